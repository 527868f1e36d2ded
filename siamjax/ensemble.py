"""Several trained twins served as one model: each pair's similarity is the mean of the members'.

An ensemble folder holds ``ensemble.json`` and the members' checkpoints::

    pretrained/omniglot/ensemble.json      {"members": ["seed2", "proxies_seed0", ...]}
    pretrained/omniglot/seed2/             a step folder (variables/, meta/) as train.py writes it
    pretrained/omniglot/proxies_seed0/

:func:`siamjax.load` reads such a folder as an :class:`Ensemble`, which offers what a
:class:`siamjax.Model` offers (embed, pairwise, score, ...). Its embedding of an image is the members'
embeddings side by side ([N, sum of D_i]); its similarity of two embeddings is the mean over members of
each member's similarity on its own block, so episodes, k-NN, galleries and verification work
unchanged. Members must share the comparison head (a mean of cosines and distances would mean nothing)
and the preprocessing except its size and ink cropping: the ensemble preprocesses images at its largest
member's size, and a member of a smaller size sees that array resized to its own (a second antialiased
resize of the already preprocessed image, so it differs slightly from that member loaded alone). When
members crop to the ink differently (``crop_to_ink``, ``keep_aspect``, ``ink_threshold``,
``crop_margin``, ``crop_frame``, ``crop_radius``), the ensemble preprocesses uncropped at twice the
largest member's size and each member crops and resizes that array its own way (again slightly unlike the
member alone, which crops the original image). ``python -m siamjax.ensemble OUT CHECKPOINT...`` builds a folder;
``--weights_dtype float16`` stores the members' weights at half the size (they load as float32 and the
model computes in float32; embeddings move by about 0.1% of their scale).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import shutil
import sys
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from siamjax import checkpoint as ckpt_lib
from siamjax.data.preprocess import preprocess_batch

MANIFEST = "ensemble.json"


def is_ensemble(path: str | pathlib.Path) -> bool:
    """Whether ``path`` is an ensemble folder (holds ``ensemble.json``)."""
    return (pathlib.Path(path) / MANIFEST).is_file()


def step_folders(path: str | pathlib.Path) -> list[pathlib.Path]:
    """The step folder of each member of an ensemble folder, or the one step folder a workdir, manager
    folder or step folder resolves to (what the per-model CLIs, e.g. python -m siamjax.whitening, write into)."""
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


@dataclasses.dataclass
class Ensemble:
    """Member models (:class:`siamjax.Model`) that share preprocessing and head; see the module doc."""

    members: list
    path: pathlib.Path | None = None

    def __post_init__(self):
        if not self.members:
            raise ValueError("an ensemble needs at least one member")
        first = self.members[0]
        for i, m in enumerate(self.members[1:], 1):
            if m.preprocessing.uncropped(first.preprocessing.size) != first.preprocessing.uncropped():
                raise ValueError(f"ensemble member {i} preprocesses images differently from member 0 "
                                 f"({m.meta['preprocessing']} vs {first.meta['preprocessing']}); members may "
                                 "differ in image size and ink cropping only")
            if m.meta["model"]["head"] != first.meta["model"]["head"]:
                raise ValueError(f"ensemble member {i} compares with head {m.meta['model']['head']!r}, member 0 "
                                 f"with {first.meta['model']['head']!r}; members must share the head")
        largest = max((m.preprocessing for m in self.members), key=lambda p: p.size)  # the first largest
        self._mixed_crops = len({_crop_settings(m.preprocessing) for m in self.members}) > 1
        # Mixed crops: an uncropped array at twice the largest size, which each member crops its own way.
        self._spec = largest.uncropped(2 * largest.size) if self._mixed_crops else largest
        self._dims = [m.embed_dim for m in self.members]
        self._pairwise = jax.jit(self.pairwise_jax)

    # ---- what siamjax.Model offers
    @property
    def preprocessing(self):
        """What :meth:`embed_preprocessed` expects: the largest member's preprocessing or, when members
        crop to the ink differently, that without cropping at twice its size."""
        return self._spec

    @property
    def tta_shift(self) -> int:
        return self.members[0].tta_shift

    @property
    def meta(self) -> dict:
        """Member 0's meta (model, preprocessing, config) with ``step`` listing every member's step and
        ``ensemble`` the number of members."""
        metas = [m.meta for m in self.members]
        return {**metas[0], "step": [mt.get("step") for mt in metas], "ensemble": len(metas)}

    @property
    def variables(self) -> dict:
        """Every member's variables, under ``member<i>`` (what identifies the ensemble's weights)."""
        return {f"member{i}": m.variables for i, m in enumerate(self.members)}

    @property
    def config(self) -> ml_collections.ConfigDict:
        return self.members[0].config

    def reinitialised(self, seed: int = 0) -> "Ensemble":
        """The same members with fresh weights (member i from ``seed + i``): an untrained baseline."""
        return dataclasses.replace(self, members=[m.reinitialised(seed + i) for i, m in enumerate(self.members)])

    def preprocess(self, images) -> np.ndarray:
        return preprocess_batch(images, self._spec)

    def embed(self, images) -> np.ndarray:
        """Raw images -> float32 [N, sum of the members' D]."""
        return self.embed_preprocessed(self.preprocess(images))

    def embed_preprocessed(self, x: np.ndarray) -> np.ndarray:
        """uint8 [N, S, S, C] at :attr:`preprocessing`'s size S -> float32 [N, sum of the members' D]; a
        member that preprocesses otherwise (smaller, or cropped differently) embeds ``x`` resized (and
        cropped) to its own (once per distinct preprocessing)."""
        self._spec.check_batch(x, " (the largest member's size)" if not self._mixed_crops else
                               " (uncropped, twice the largest member's size)")
        views = {}
        for m in self.members:
            if m.preprocessing not in views:
                views[m.preprocessing] = self._view(x, m.preprocessing)
        return np.concatenate([m.embed_preprocessed(views[m.preprocessing]) for m in self.members], axis=1)

    def _view(self, x: np.ndarray, spec) -> np.ndarray:
        """The ensemble's array ``x`` as a member preprocessing with ``spec`` sees it."""
        if spec == self._spec:
            return x
        if self._mixed_crops:  # polarity was applied; each member crops the uncropped array its own way
            return preprocess_batch(x, dataclasses.replace(spec, invert=False))
        # polarity, crop and aspect were applied at the largest size
        return preprocess_batch(x, dataclasses.replace(spec.uncropped(), invert=False))

    def member_blocks(self, e):
        """Split embeddings [N, sum D_i] into the members' [N, D_i] blocks, in member order (each member's
        own embedding); ValueError for another width."""
        dims = self._dims
        if e.shape[-1] != sum(dims):
            raise ValueError(f"expected ensemble embeddings of width {sum(dims)} (members: {dims}), "
                             f"got shape {tuple(e.shape)}")
        return jnp.split(e, np.cumsum(dims)[:-1].tolist(), axis=-1)

    def pairwise_jax(self, a: jax.Array, b: jax.Array) -> jax.Array:
        """Traceable mean of the members' all-pairs similarities: [N, sum D], [M, sum D] -> [N, M]."""
        sims = [m.pairwise_jax(x, y) for m, x, y in zip(self.members, self.member_blocks(a), self.member_blocks(b))]
        return sum(sims) / len(sims)

    def pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.asarray(self._pairwise(jnp.asarray(a), jnp.asarray(b)))

    def score_embeddings(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Mean of the members' similarities of aligned pairs: [N, sum D], [N, sum D] -> [N]."""
        blocks = zip(self.members, self.member_blocks(jnp.asarray(a)), self.member_blocks(jnp.asarray(b)))
        return np.mean([m.score_embeddings(x, y) for m, x, y in blocks], axis=0).astype(np.float32)

    def score(self, a, b) -> np.ndarray:
        """Similarity of aligned pairs (a[i], b[i]) of raw images: float32 [N]."""
        ea, eb = self.embed(a), self.embed(b)
        if len(ea) != len(eb):
            raise ValueError(f"score needs as many images in a as in b, got {len(ea)} and {len(eb)}")
        return self.score_embeddings(ea, eb)


def _crop_settings(spec) -> tuple:
    """What of a Preprocessing decides how an image is cropped and fitted (threshold, frame, margin and
    radius only count when it crops, the margin only for a box and the radius only for a moments frame)."""
    crops = spec.crop_to_ink
    frame = spec.crop_frame if crops else None
    return (crops, spec.keep_aspect, spec.ink_threshold if crops else None, frame,
            spec.crop_margin if frame == "box" else None, spec.crop_radius if frame == "moments" else None)


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
    from siamjax.api import load  # not at the top: siamjax.api imports this module lazily too

    _copy_step(step, dest, leave_out=("variables",))
    variables = jax.tree_util.tree_map(
        lambda x: x.astype(dtype) if x.dtype == jnp.float32 else x, load(step).variables)
    with ocp.StandardCheckpointer() as saver:
        saver.save((dest / "variables").resolve(), variables)


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
    if weights_dtype not in WEIGHTS_DTYPES:
        raise ValueError(f"weights_dtype must be one of {', '.join(WEIGHTS_DTYPES)}, got {weights_dtype!r}")
    out = pathlib.Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; remove it or pick another folder")
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
        if weights_dtype == "float32" or src.get("weights_dtype") == weights_dtype:
            _copy_step(step, out / name)  # as trained, or a member of an ensemble already stored so
        else:
            _store_weights(step, out / name, weights_dtype)
    if weights_dtype != "float32":
        sources = [{**src, "weights_dtype": weights_dtype} for src in sources]
    (out / MANIFEST).write_text(json.dumps({"members": names, "sources": sources}, indent=2) + "\n")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m siamjax.ensemble",
                                     description="Build an ensemble folder that siamjax.load reads as one model.")
    parser.add_argument("out", help="the folder to create")
    parser.add_argument("checkpoints", nargs="+", help="workdirs, manager folders or step folders")
    parser.add_argument("--names", default="", help="comma-separated member folder names (default member0, ...)")
    parser.add_argument("--weights_dtype", default="float32", choices=WEIGHTS_DTYPES,
                        help="float32 (default) copies the step folders unchanged; float16 stores their weights at half "
                             "the size (loaded as float32)")
    args = parser.parse_args(argv)
    try:
        out = write_ensemble(args.out, args.checkpoints, args.names.split(",") if args.names else None,
                             args.weights_dtype)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out / MANIFEST} with {len(args.checkpoints)} members")
    return 0


if __name__ == "__main__":
    sys.exit(main())
