"""siamjax: Siamese (twin) networks for image recognition in JAX / Flax.

Layers, each importing only from those above it (tests/test_layers.py checks it):
``settings`` -> ``config_layout`` -> ``nn`` -> ``losses`` -> ``data`` -> ``checkpoint`` -> ``infer`` -> ``eval``
-> ``train`` -> ``tracking`` -> ``cli``.
"""
from siamjax.eval.gallery import Gallery
from siamjax.infer.ensemble import Ensemble
from siamjax.infer.load import load
from siamjax.infer.model import Model
from siamjax.nn.twin import Twin, make_twin

__all__ = ["Ensemble", "Gallery", "Model", "Twin", "load", "make_twin"]
__version__ = "0.2.0"
