"""Which Python `make setup` builds the virtual environment with.

    python3 tools/pick_python.py            # newest Python here that gets the newest JAX wheels
    python3 tools/pick_python.py --oldest   # oldest supported Python here (CI's smoke run)

Prints one interpreter path on stdout (the reasons on stderr). Candidates: every ``python3.N`` on PATH,
every interpreter under pyenv's ``versions/`` (pyenv's shims answer only for the selected version, so
they are run, not trusted), and ``python3``. A candidate counts when it runs, is >= 3.11 and has venv.
For each, ``pip index versions jaxlib`` asks the package index which JAX it would get; the pick is the
newest JAX, and among Pythons that get it, the newest Python. Without an answer from the index (no
network, no pip) it falls back to ``python3``.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys

OLDEST = (3, 11)  # pyproject's requires-python
PROBE = "import sys, venv; print(sys.version_info[0], sys.version_info[1], sys.version_info[2]); print(sys.executable)"


def candidates() -> list[str]:
    """Interpreter paths worth probing (may include ones that do not run)."""
    found = [shutil.which(f"python3.{minor}") for minor in range(30, OLDEST[1] - 1, -1)]
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found += sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin", "python3")), reverse=True)
    found.append(shutil.which("python3"))
    return [p for p in dict.fromkeys(found) if p]


def probe(exe: str) -> tuple[tuple[int, int, int], str] | None:
    """(version, real executable) of a runnable interpreter with venv, else None."""
    try:
        out = subprocess.run([exe, "-c", PROBE], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    first, path = out.stdout.strip().splitlines()[:2]
    return tuple(int(x) for x in first.split()), os.path.realpath(path)


def newest_jaxlib(exe: str) -> tuple[int, ...] | None:
    """The newest jaxlib release pip would install for this interpreter, or None when pip cannot say."""
    try:
        out = subprocess.run([exe, "-m", "pip", "index", "versions", "jaxlib"], capture_output=True, text=True,
                             timeout=120, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"jaxlib \(([0-9.]+)", out.stdout)
    return tuple(int(x) for x in match.group(1).split(".")) if match else None


def interpreters() -> dict[str, tuple[int, int, int]]:
    """Real path -> version of every supported interpreter here."""
    seen: dict[str, tuple[int, int, int]] = {}
    for exe in candidates():
        found = probe(exe)
        if found and found[0][:2] >= OLDEST:
            seen.setdefault(found[1], found[0])
    return seen


def choose(ranked: list[tuple[tuple[int, ...], tuple[int, int, int], str]]) -> tuple:
    """The (jax, python, path) to use from (jax version, python version, path) rows: newest JAX first,
    then the newest Python that gets it."""
    return max(ranked)


def fmt(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--oldest", action="store_true", help="the oldest supported Python here instead")
    args = parser.parse_args()
    found = interpreters()
    if not found:
        print("pick_python: no Python >= %s with venv found; using python3" % fmt(OLDEST), file=sys.stderr)
        print("python3")
        return 0
    if args.oldest:
        exe = min(found, key=found.get)
        print(f"pick_python: oldest supported Python here: {fmt(found[exe])} ({exe})", file=sys.stderr)
        print(exe)
        return 0
    ranked = []
    for exe, version in found.items():
        jax = newest_jaxlib(exe)
        print(f"pick_python: Python {fmt(version)} ({exe}): JAX {fmt(jax) if jax else 'unknown (no index answer)'}",
              file=sys.stderr)
        if jax:
            ranked.append((jax, version, exe))
    if not ranked:
        print("pick_python: the package index did not answer; using python3", file=sys.stderr)
        print("python3")
        return 0
    jax, version, exe = choose(ranked)
    print(f"pick_python: using Python {fmt(version)}, which gets JAX {fmt(jax)}", file=sys.stderr)
    print(exe)
    return 0


if __name__ == "__main__":
    sys.exit(main())
