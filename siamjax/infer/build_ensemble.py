"""Write what is served from trained checkpoints, optionally with half-size weights: one model's step folder
(``write_model``) or an ensemble folder (``write_ensemble``)."""
from __future__ import annotations

import json
import pathlib
import shutil
from typing import Sequence

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from siamjax import checkpoint as ckpt_lib
from siamjax.infer.load import load
from siamjax.infer.manifest import MANIFEST, is_ensemble, read_manifest


WEIGHTS_DTYPES = ("float32", "float16", "bfloat16")


def _copy_step(step: pathlib.Path, dest: pathlib.Path, leave_out: tuple[str, ...] = ()) -> None:
    """Copy ``step``'s folder to ``dest`` without its ``train`` item (the optimizer state that a step
    under ``WORKDIR/checkpoints/`` keeps for resuming: 88 MB beside about 3.6 MB of float32 weights for a
    run with class proxies; a model does not use it) and without the top-level items named in ``leave_out``."""
    skip = {ckpt_lib.TRAIN_ITEM, *leave_out}
    shutil.copytree(step, dest, ignore=lambda d, names: [n for n in names if n in skip]
                    if pathlib.Path(d) == step else [])


def _store_weights(step: pathlib.Path, dest: pathlib.Path, dtype: str) -> None:
    """Write ``step``'s folder to ``dest`` with its float32 ``variables`` stored as ``dtype``."""
    _copy_step(step, dest, leave_out=("variables",))
    variables = jax.tree_util.tree_map(
        lambda x: x.astype(dtype) if x.dtype == jnp.float32 else x, load(step).variables)
    with ocp.StandardCheckpointer() as saver:
        saver.save((dest / "variables").resolve(), variables)


def _write_step(step: pathlib.Path, dest: pathlib.Path, dtype: str) -> None:
    """``step``'s folder at ``dest``: copied as it is for float32, else with its weights stored as ``dtype``."""
    if dtype == "float32":
        _copy_step(step, dest)
    else:
        _store_weights(step, dest, dtype)


def _new_folder(out: str | pathlib.Path, weights_dtype: str) -> pathlib.Path:
    """``out`` as a path, after checking the dtype and that nothing is there yet."""
    if weights_dtype not in WEIGHTS_DTYPES:
        raise ValueError(f"weights_dtype must be one of {', '.join(WEIGHTS_DTYPES)}, got {weights_dtype!r}")
    out = pathlib.Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; remove it or pick another folder")
    return out


def _source(checkpoint: str | pathlib.Path, step: pathlib.Path) -> dict:
    """Where a member's weights came from: the checkpoint and step folder it was copied from, or, for a
    member of another ensemble folder, that ensemble's record of its source (so rebuilding an ensemble from
    an older one keeps each member's training run and step), with ``"via"`` naming the folder copied."""
    own = {"checkpoint": str(checkpoint), "step": step.name}
    if not is_ensemble(step.parent):
        return own
    try:
        spec = read_manifest(step.parent)
        recorded = dict(zip(spec["members"], spec["sources"]))[step.name]
    except (ValueError, KeyError, TypeError):
        return own
    return {**recorded, "via": str(checkpoint)} if isinstance(recorded, dict) else own


def write_ensemble(out: str | pathlib.Path, checkpoints: Sequence[str | pathlib.Path],
                   names: Sequence[str] | None = None, weights_dtype: str = "float32") -> pathlib.Path:
    """Copy each checkpoint's step folder (as :func:`siamjax.load` would pick it) into ``out/<name>`` and
    write ``out/ensemble.json``. ``out`` must not exist yet. ``weights_dtype``: ``float32`` copies the
    step folders unchanged; ``float16`` / ``bfloat16`` store their float weights at half the size (they
    load as float32), except that a member of another ensemble folder whose manifest records it stored
    in that dtype already is copied unchanged (so growing an ensemble leaves its members' files as they
    were). A step under ``WORKDIR/checkpoints/`` is copied without its optimizer state. Returns ``out``."""
    out = _new_folder(out, weights_dtype)
    names = list(names) if names is not None else [f"member{i}" for i in range(len(checkpoints))]
    if len(names) != len(checkpoints) or len(set(names)) != len(names) or not checkpoints:
        raise ValueError(f"need one distinct name per checkpoint, got {names} for {len(checkpoints)} checkpoints")
    for n in names:
        if pathlib.PurePath(n).name != n or n in ("", ".", ".."):
            raise ValueError(f"member name {n!r} must be a plain folder name (no '/', not '.' or '..')")
    steps = [ckpt_lib.resolve_checkpoint(c) for c in checkpoints]
    sources = [_source(c, s) for c, s in zip(checkpoints, steps)]
    out.mkdir(parents=True)
    for name, step, src in zip(names, steps, sources):
        # a member of an ensemble already stored in weights_dtype is copied as it is
        _write_step(step, out / name, "float32" if src.get("weights_dtype") == weights_dtype else weights_dtype)
    if weights_dtype != "float32":
        sources = [{**src, "weights_dtype": weights_dtype} for src in sources]
    (out / MANIFEST).write_text(json.dumps({"members": names, "sources": sources}, indent=2) + "\n")
    return out


def write_model(out: str | pathlib.Path, checkpoint: str | pathlib.Path, weights_dtype: str = "float32") -> pathlib.Path:
    """Copy the step folder :func:`siamjax.load` picks in ``checkpoint`` (a workdir, manager or step folder)
    to ``out``, which must not exist, without the optimizer state and with its weights stored as
    ``weights_dtype`` (float16 / bfloat16: half the size, loaded as float32). Returns ``out``."""
    out = _new_folder(out, weights_dtype)
    if is_ensemble(checkpoint):
        raise ValueError(f"{checkpoint} is an ensemble folder; give one model's checkpoint")
    step = ckpt_lib.resolve_checkpoint(checkpoint)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_step(step, out, weights_dtype)
    return out
