"""``siamjax.load(path)``: a trained model (or ensemble) from a workdir, step folder or ensemble folder."""
from __future__ import annotations

import functools
import pathlib

import jax

from siamjax import checkpoint as ckpt_lib
from siamjax.data.preprocess import Preprocessing
from siamjax.infer import block_pooling as pooling_lib
from siamjax.infer import whitening as whitening_lib
from siamjax.infer.ensemble import Ensemble
from siamjax.infer.manifest import is_ensemble, member_dirs
from siamjax.infer.model import Model
from siamjax.nn.twin import make_twin

# Checkpoints of other kinds (meta["kind"]) and the function that loads each.
LOADERS = {"siamfc": "siamjax.tracking.net.load_siamfc(path) (or siamjax-track / siamjax-eval track)"}


def load(path: str | pathlib.Path, tta_shift: int = 0, whitening: bool = True,
         block_pooling: bool = True, allow_nonfinite: bool = False) -> Model | Ensemble:
    """Load a model from a training workdir (its best checkpoint), a manager folder or a step folder;
    an ensemble folder (``ensemble.json``, see :mod:`siamjax.infer.ensemble`) loads as an :class:`Ensemble`
    of its members. ``tta_shift``: see :attr:`Model.tta_shift` (test-time augmentation, off by default).
    ``whitening``: apply the step folder's ``whitening.npz`` where there is one (:mod:`siamjax.infer.whitening`).
    ``block_pooling``: append the pooled block that the step folder's ``block_pooling.json`` names, where
    there is one (:mod:`siamjax.infer.block_pooling`). Weights holding a NaN or an infinity (a diverged run)
    raise a one-line ValueError naming the step folder, unless ``allow_nonfinite``.

    The model computes in float32 whatever ``config.model.compute_dtype`` it was trained with: the weights a
    bfloat16 run saves are float32 (checkpoints from before the setting existed load the same way)."""
    if is_ensemble(path):
        return Ensemble([load(d, tta_shift, whitening, block_pooling, allow_nonfinite) for d in member_dirs(path)],
                        path=pathlib.Path(path))
    step_dir = ckpt_lib.resolve_checkpoint(path)
    meta = ckpt_lib.read_meta(step_dir)
    if meta.get("kind", "twin") != "twin":  # e.g. a SiamFC tracker: not an embedding model
        loader = LOADERS.get(meta["kind"], "the loader of that task")
        raise ValueError(f"{step_dir} holds a {meta['kind']!r} checkpoint, not a twin (embedding) model: "
                         f"load it with {loader}")
    spec = Preprocessing.from_dict(meta["preprocessing"])
    m = meta["model"]
    # projection: the projector / predictor of an unsupervised run (kept so the run resumes; unused here)
    twin = make_twin(m["model"], m["head"], m.get("model_kwargs") or {}, projection=m.get("projection"))
    shapes = jax.eval_shape(functools.partial(twin.init, image_shape=(spec.size, spec.size, spec.channels)),
                            jax.random.key(0))
    variables = ckpt_lib.read_variables(step_dir, shapes, allow_nonfinite=allow_nonfinite)
    white = None
    if whitening and (step_dir / whitening_lib.FILENAME).exists():
        white = whitening_lib.read(step_dir / whitening_lib.FILENAME)
        if m["head"] not in whitening_lib.HEADS:
            raise ValueError(f"{step_dir}: has a {whitening_lib.FILENAME} but compares with head {m['head']!r}; "
                             "whitening needs a cosine or correlation head (delete the file)")
    pooling = None
    if block_pooling and (step_dir / pooling_lib.FILENAME).exists():
        pooling = pooling_lib.read(step_dir / pooling_lib.FILENAME)
    return Model(twin=twin, variables=variables, preprocessing=spec, meta=meta, path=step_dir, tta_shift=tta_shift,
                 whitening=white, block_pooling=pooling)
