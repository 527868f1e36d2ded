"""Ensemble folders: ``ensemble.json`` naming member step folders inside the folder."""
from __future__ import annotations

import json
import pathlib

from siamjax import checkpoint as ckpt_lib

MANIFEST = "ensemble.json"


def is_ensemble(path: str | pathlib.Path) -> bool:
    """Whether ``path`` is an ensemble folder (holds ``ensemble.json``)."""
    return (pathlib.Path(path) / MANIFEST).is_file()


def step_folders(path: str | pathlib.Path) -> list[pathlib.Path]:
    """The step folder of each member of an ensemble folder, or the one step folder a workdir, manager
    folder or step folder resolves to (what the per-model CLIs, e.g. python -m siamjax.cli.whitening, write into)."""
    return member_dirs(path) if is_ensemble(path) else [ckpt_lib.resolve_checkpoint(path)]


def read_manifest(path: str | pathlib.Path):
    """The parsed ``ensemble.json`` of the ensemble folder ``path`` (unchecked); ValueError if unreadable."""
    manifest = pathlib.Path(path) / MANIFEST
    try:
        return json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{manifest}: cannot read the ensemble manifest ({type(e).__name__}: {e})") from e


def member_dirs(path: str | pathlib.Path) -> list[pathlib.Path]:
    """The member folders an ensemble folder's manifest names, each checked to lie inside the folder."""
    root = pathlib.Path(path).resolve()
    manifest = root / MANIFEST
    spec = read_manifest(root)
    members = spec.get("members") if isinstance(spec, dict) else None
    if not isinstance(members, list) or not members or not all(isinstance(m, str) and m for m in members):
        raise ValueError(f'{manifest}: expected {{"members": ["<folder>", ...]}} with at least one member, '
                         f"got {spec!r}")
    dirs = []
    for name in members:
        d = (root / name).resolve()
        if pathlib.PurePath(name).is_absolute() or not d.is_relative_to(root) or d == root:
            raise ValueError(f"{manifest}: member {name!r} points outside the ensemble folder; members are "
                             "folders inside it, named relative to it")
        if not d.is_dir():
            raise FileNotFoundError(f"{manifest}: member {name!r} is missing ({d} is not a folder)")
        if is_ensemble(d):
            raise ValueError(f"{manifest}: member {name!r} is itself an ensemble; list its members instead")
        dirs.append(d)
    return dirs
