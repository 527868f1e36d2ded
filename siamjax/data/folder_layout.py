"""How a listed image folder (or zip) is laid out into classes, from the listing alone.

:func:`find_layout` takes a :class:`~siamjax.data.zipfolder.Tree` and finds ``ROOT/<class>/<image>``
(one level) or ``ROOT/<group>/<class>/<image>`` (two levels), looking through wrapping folders; the
rules are in :mod:`siamjax.data.folder`. Also the layout text of error messages (:data:`EXPECTED`)
and :func:`shown` (the first few names of a list, for messages).
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Sequence

from siamjax.data.decode import IMAGE_EXTENSIONS, is_image_name, natural_key
from siamjax.data.zipfolder import Entry, Tree

__all__ = ["EXPECTED", "Layout", "find_layout", "shown"]

SHOW = 5  # names listed in a message
EXTS = " ".join(IMAGE_EXTENSIONS)
EXPECTED = (
    "expected one subfolder per class holding that class's images, ROOT/<class>/<image> "
    "(or two levels, ROOT/<group>/<class>/<image>), as a folder or a .zip of one; "
    f"image extensions: {EXTS}"
)


def shown(items: Sequence[str], n: int = SHOW) -> str:
    """The first ``n`` of ``items``, comma-separated, with the total when some are left out."""
    head = ", ".join(items[:n])
    return head + (f", ... ({len(items)} in all)" if len(items) > n else "")


@dataclasses.dataclass
class Layout:
    levels: int  # 1: <class>/<image>; 2: <group>/<class>/<image>
    root_name: str  # the one-level group's name
    prefix: tuple[str, ...]  # wrapping folders looked through
    classes: dict[tuple[str, ...], list[Entry]]  # class key (1 or 2 parts) -> image entries, all sorted
    ignored_images: list[str]  # image files outside the layout
    unknown: list[Entry]  # files with other extensions


def _strip(tree: Tree, top: str) -> Tree:
    return Tree(
        [dataclasses.replace(f, parts=f.parts[1:]) for f in tree.files if f.parts[0] == top and len(f.parts) > 1],
        {d[1:] for d in tree.dirs if d[0] == top and len(d) > 1},
        tree.skipped,
    )


def find_layout(src, tree: Tree, default_name: str) -> Layout:
    """The :class:`Layout` of ``tree`` (listed from ``src``); ValueError stating the expected layout
    when it has none (empty, no images, images only loose in ROOT or nested too deep)."""
    where = src.path
    prefix: tuple[str, ...] = ()
    while True:
        images = [f for f in tree.files if is_image_name(f.parts[-1])]
        tops = {f.parts[0] for f in images}
        if len(tops) != 1 or any(len(f.parts) < 3 for f in images):
            break
        (top,) = tops
        tree = _strip(tree, top)
        prefix += (top,)
    images = [f for f in tree.files if is_image_name(f.parts[-1])]
    unknown = [f for f in tree.files if not is_image_name(f.parts[-1])]
    root_txt = f"{where}" + (f" (inside {'/'.join(prefix)}/)" if prefix else "")
    if not tree.files and not tree.dirs:
        extra = f" ({len(tree.skipped)} entries skipped: {shown(tree.skipped)})" if tree.skipped else ""
        raise ValueError(f"{root_txt} is empty{extra}; {EXPECTED}")
    depth = collections.Counter(len(f.parts) for f in images)
    n2, n3 = depth[2], depth[3]
    if n2 == 0 and n3 == 0:
        if not images:
            others = collections.Counter(os.path.splitext(f.parts[-1])[1].lower() or "(none)" for f in unknown)
            found = (", ".join(f"{k}: {v}" for k, v in others.most_common(8))) if others else "no files"
            raise ValueError(f"no image files in {root_txt} (found {found}; "
                             f"{len(tree.dirs)} folder(s)); {EXPECTED}")
        if depth[1]:
            raise ValueError(f"{root_txt} holds {depth[1]} image(s) directly but no class subfolders with images; "
                             f"move each class's images into its own subfolder: {EXPECTED}")
        deepest = sorted("/".join(f.parts) for f in images)
        raise ValueError(f"the images in {root_txt} are nested too deep ({shown(deepest, 3)}); "
                         f"{EXPECTED}: pass the folder that holds the class folders")
    levels = 2 if n3 > n2 else 1
    keep = levels + 1
    ignored = sorted(("/".join(prefix + f.parts) for f in images if len(f.parts) != keep), key=natural_key)
    classes: dict[tuple[str, ...], list[Entry]] = {d: [] for d in tree.dirs if len(d) == levels}
    for f in images:
        if len(f.parts) == keep:
            classes.setdefault(f.parts[:levels], []).append(f)
    ordered = sorted(classes, key=lambda k: tuple(natural_key(p) for p in k))
    root_name = prefix[-1] if prefix else default_name
    return Layout(
        levels, root_name, prefix,
        {k: sorted(classes[k], key=lambda f: natural_key(f.parts[-1])) for k in ordered},
        ignored, unknown,
    )
