"""Data layer: preprocessing, datasets (in memory or decoded on demand), Omniglot, image folders,
TensorFlow Datasets, and batch samplers.

Host-side NumPy throughout; only :func:`to_float` uses JAX (on device, inside ``jit``).
"""

from siamjax.data.dataset import LabeledImages
from siamjax.data.folder import load_image_folder, split_dataset
from siamjax.data.lazy import LazyImages
from siamjax.data.omniglot import alphabet_names, default_cache_dir, load_omniglot
from siamjax.data.preprocess import Preprocessing, preprocess_batch, preprocess_image, to_float
from siamjax.data.samplers import BalancedPairSampler, PairIndex, PKSampler

__all__ = [
    "BalancedPairSampler",
    "LabeledImages",
    "LazyImages",
    "PKSampler",
    "PairIndex",
    "Preprocessing",
    "alphabet_names",
    "default_cache_dir",
    "load_image_folder",
    "load_omniglot",
    "preprocess_batch",
    "preprocess_image",
    "split_dataset",
    "to_float",
]
