"""Networks: encoders, comparison heads, distances, the twin, the unsupervised projector and predictor."""
from siamjax.nn.encoders import ENCODERS, make_encoder
from siamjax.nn.heads import HEADS, HeadOutput, make_head
from siamjax.nn.twin import TWIN_AXIS, Siamese, Twin, make_twin

__all__ = ["ENCODERS", "HEADS", "HeadOutput", "Siamese", "TWIN_AXIS", "Twin", "make_encoder", "make_head", "make_twin"]
