"""Data layer: preprocessing, in-memory datasets, Omniglot loading and batch samplers.

Host-side NumPy throughout; only :func:`to_float` uses JAX (on device, inside ``jit``).
"""

from siamjax.data.dataset import LabeledImages
from siamjax.data.omniglot import alphabet_names, default_cache_dir, load_omniglot
from siamjax.data.preprocess import Preprocessing, preprocess_batch, preprocess_image, to_float
from siamjax.data.samplers import BalancedPairSampler, PairIndex, PKSampler

__all__ = [
    "BalancedPairSampler",
    "LabeledImages",
    "PKSampler",
    "PairIndex",
    "Preprocessing",
    "alphabet_names",
    "default_cache_dir",
    "load_omniglot",
    "preprocess_batch",
    "preprocess_image",
    "to_float",
]
