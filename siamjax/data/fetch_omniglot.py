"""Make sure Omniglot is on disk: ``python -m siamjax.data.fetch_omniglot DEST``.

Does nothing when DEST already holds ``images_background.zip`` and ``images_evaluation.zip`` (or the
extracted folders). Otherwise, on a host with internet, downloads the official zips from Lake's
repository (github.com/brendenlake/omniglot, MIT licence) into DEST. Never called by the tests.
"""
from __future__ import annotations

import pathlib
import sys
import urllib.request

OFFICIAL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/{name}.zip"
SPLITS = ("images_background", "images_evaluation")


def present(dest: pathlib.Path) -> bool:
    return all((dest / f"{s}.zip").is_file() or (dest / s).is_dir() for s in SPLITS)


def fetch(dest: str | pathlib.Path) -> pathlib.Path:
    dest = pathlib.Path(dest)
    if present(dest):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        target = dest / f"{split}.zip"
        if target.is_file():
            continue
        url = OFFICIAL.format(name=split)
        print(f"downloading {url} -> {target}", file=sys.stderr)
        tmp = target.with_suffix(".zip.part")
        try:
            with urllib.request.urlopen(url, timeout=60) as r, tmp.open("wb") as f:
                while chunk := r.read(1 << 20):
                    f.write(chunk)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise SystemExit(f"Omniglot is not in {dest} and could not be downloaded ({e}). Put "
                             f"images_background.zip and images_evaluation.zip there, or pass DATA=<folder "
                             f"holding omniglot/> to make.") from e
        tmp.replace(target)
    return dest


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m siamjax.data.fetch_omniglot DEST")
    print(f"Omniglot: {fetch(sys.argv[1])}")
