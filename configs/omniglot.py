"""Omniglot one-shot: a conv-4 twin trained on images_background, validated on held-out background
alphabets (20-way within-alphabet one-shot), never on the evaluation alphabets.

  python train.py --config configs/omniglot.py --workdir workdirs/omniglot
  python eval.py --checkpoint workdirs/omniglot --data_dir ../shared/data/omniglot
"""
import ml_collections

from configs.common import add_training


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    # Data: the folder holding images_background.zip / images_evaluation.zip (or extracted folders).
    c.data = "omniglot"
    c.data_dir = "../shared/data/omniglot"
    c.image_size = 28  # Omniglot's 105x105 strokes, resized (area-averaged) to image_size^2
    c.invert = True  # Omniglot PNGs are dark ink on white: make ink the high value
    # Crop each image to its ink's bounding box (pixels above ink_threshold once ink is high), widened
    # by crop_margin x the box's longer side; keep_aspect resizes the longer side to image_size and
    # pads the shorter one. Off: the whole 105 x 105 canvas is resized.
    c.crop_to_ink = False
    c.ink_threshold = 0.5
    c.crop_margin = 0.02
    c.keep_aspect = False
    # crop_frame="moments" crops instead to a square centred on the ink's centre of mass, of half-side
    # crop_radius x the ink's RMS distance from it (siamjax.data.preprocess; crop_margin then unused).
    c.crop_frame = "box"
    c.crop_radius = 2.0
    # --config.data=tfds:NAME reads a prepared TensorFlow Datasets dataset instead (tfds:omniglot: the
    # val_alphabets are held out of tfds_train_split). "" = TFDS's default folder ($TFDS_DATA_DIR or
    # ~/tensorflow_datasets).
    c.tfds_data_dir = ""
    c.tfds_train_split = "train"
    c.alphabets = ()  # background alphabets to read (empty = all 30); must include val_alphabets
    # Background alphabets held out of training for validation (model selection) tasks.
    c.val_alphabets = ("Bengali", "Futurama", "Hebrew", "Japanese_(katakana)", "Tifinagh")
    add_training(c, val_ways=20)
    return c
