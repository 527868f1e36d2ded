"""Generate tests/oracle/margin_reference.json: CosFace and ArcFace values (and gradients) computed by
pytorch-metric-learning 2.9.0 on fixed inputs, in float64. The oracle of tests/test_margin_losses.py.

Runs only in a throwaway venv outside the repository (never imported by the tests):

    python3 -m venv /tmp/pmlvenv
    /tmp/pmlvenv/bin/pip install torch==2.13.0        # first, with exactly this pin (the CPU build)
    /tmp/pmlvenv/bin/pip install pytorch-metric-learning==2.9.0
    /tmp/pmlvenv/bin/python tests/oracle/make_margin_reference.py [path/to/pml_reference.json]

Inputs: ``embeddings`` [24, 6] and ``labels`` [24] (6 classes x 4) of the shared pml_reference.json
(../shared/testdata/), and ``class_vectors`` [8, 6] drawn here from ``numpy.random.default_rng(48)``
(8 classes: classes 6 and 7 have no image, they only compete). pml's loss holds the class vectors as
its parameter ``W`` [embedding_size, num_classes] = ``class_vectors.T``; the stored gradient
``grad_class_vectors`` is d loss / d W transposed back to [8, 6].

What pml 2.9.0 computes (pytorch_metric_learning/losses/large_margin_softmax_loss.py, cosface_loss.py,
arcface_loss.py), read from its source:
  * cosine = CosineSimilarity()(embeddings, W.t()): both sides L2-normalised
    (torch.nn.functional.normalize, eps 1e-12), [N, C];
  * the target column of each row is replaced: CosFace cos - margin; ArcFace, with
    theta = acos(clamp(cos, -1, 1)) and margin converted from degrees by np.radians in init_margin,
    cos(theta + m) where theta <= pi - m, else cos(theta) - m * sin(m) (keeps the logit decreasing
    in theta past pi - m);
  * logits = scale * that (scale_logits of both subclasses ignores the norms);
  * loss = torch.nn.CrossEntropyLoss(reduction="none") per row, reduced by the default MeanReducer
    (mean over the N rows); no weight_regularizer and no embedding_regularizer by default, so nothing
    is added; miner weights are all 1 without an indices_tuple.
"""
from __future__ import annotations

import json
import math
import pathlib
import sys

import numpy as np
import pytorch_metric_learning
import torch
from pytorch_metric_learning.losses import ArcFaceLoss, CosFaceLoss

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_INPUTS = HERE.parents[2] / "shared" / "testdata" / "pml_reference.json"
NUM_CLASSES = 8
SEED = 48

# (name, pml class, margin in pml's unit (CosFace: cosine; ArcFace: degrees), scale)
CASES = [
    ("cosface_m0.35_s64", CosFaceLoss, 0.35, 64.0),  # pml's defaults
    ("cosface_m0.1_s10", CosFaceLoss, 0.1, 10.0),  # siamjax's proxy-loss defaults
    ("cosface_m0.2_s1", CosFaceLoss, 0.2, 1.0),  # small scale
    ("cosface_m0_s16", CosFaceLoss, 0.0, 16.0),  # no margin: a normalised softmax
    ("arcface_m28.6_s64", ArcFaceLoss, 28.6, 64.0),  # pml's defaults
    ("arcface_m10_s2", ArcFaceLoss, 10.0, 2.0),  # small scale
    ("arcface_m80_s4", ArcFaceLoss, 80.0, 4.0),  # large margin: many targets past pi - m (the other branch)
]


def definition(kind: str, margin: float, scale: float) -> str:
    common = ("cosine = <x_i/||x_i||, w_c/||w_c||> of every embedding [24] with every class vector [8] "
              "(class_vectors [C, D]; pml's W = class_vectors.T)")
    if kind == "cosface":
        return (f"CosFaceLoss(num_classes=8, embedding_size=6, margin={margin}, scale={scale}): {common}; logits = "
                f"{scale} * (cosine - {margin} at the row's own class); loss = mean over the 24 rows of the "
                "softmax cross-entropy of the own class (nats)")
    return (f"ArcFaceLoss(num_classes=8, embedding_size=6, margin={margin}, scale={scale}): {common}; "
            f"m = radians({margin}) = {math.radians(margin)!r}; at the row's own class "
            "theta = acos(clamp(cosine, -1, 1)) "
            f"and the logit is {scale} * cos(theta + m) where theta <= pi - m, else {scale} * (cosine - m * sin(m)); "
            f"other classes {scale} * cosine; loss = mean over the 24 rows of the softmax cross-entropy of the own "
            "class (nats)")


def main(inputs_path: pathlib.Path) -> dict:
    torch.set_default_dtype(torch.float64)
    inputs = json.loads(inputs_path.read_text())
    x = np.asarray(inputs["embeddings"], dtype=np.float64)
    labels = np.asarray(inputs["labels"], dtype=np.int64)
    w = np.random.default_rng(SEED).normal(size=(NUM_CLASSES, x.shape[1]))  # [C, D]
    cases = []
    for name, cls, margin, scale in CASES:
        loss_fn = cls(num_classes=NUM_CLASSES, embedding_size=x.shape[1], margin=margin, scale=scale)
        with torch.no_grad():
            loss_fn.W.copy_(torch.from_numpy(w.T.copy()))
        e = torch.tensor(x, requires_grad=True)
        loss = loss_fn(e, torch.from_numpy(labels))
        loss.backward()
        kind = "cosface" if cls is CosFaceLoss else "arcface"
        cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T
        target_cos = cos[np.arange(len(labels)), labels]
        case = {"name": name, "loss": kind, "margin": margin,
                "margin_unit": "cosine" if kind == "cosface" else "degrees", "scale": scale,
                "definition": definition(kind, margin, scale), "value": float(loss.item()),
                "grad_embeddings": e.grad.numpy().tolist(), "grad_class_vectors": loss_fn.W.grad.numpy().T.tolist()}
        if kind == "arcface":  # rows whose own-class angle lies past pi - m (the cos - m sin m branch)
            case["rows_past_pi_minus_m"] = int(np.sum(np.arccos(np.clip(target_cos, -1, 1))
                                                      > math.pi - math.radians(margin)))
        cases.append(case)
    return {
        "pytorch_metric_learning": pytorch_metric_learning.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "generator": "tests/oracle/make_margin_reference.py",
        "inputs": f"embeddings [24, 6] and labels [24] of pml_reference.json; class_vectors [8, 6] = "
                  f"numpy.random.default_rng({SEED}).normal(size=(8, 6)), stored here",
        "dtype": "float64",
        "class_vectors": w.tolist(),
        "cases": cases,
    }


if __name__ == "__main__":
    src = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_INPUTS
    out = main(src)
    (HERE / "margin_reference.json").write_text(json.dumps(out, indent=1) + "\n")
    for c in out["cases"]:
        print(f"{c['name']:22s} {c['value']!r}  {c.get('rows_past_pi_minus_m', '')}")
