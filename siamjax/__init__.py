"""siamjax: Siamese (twin) networks for image recognition in JAX / Flax."""
from siamjax.api import Model, load
from siamjax.siamese import Twin, make_twin

__all__ = ["Model", "Twin", "load", "make_twin"]
__version__ = "0.1.0"
