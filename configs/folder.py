"""Your own images: a twin trained on a class-per-subfolder image folder (or a zip of one), validated
on held-out classes (one-shot tasks among classes never seen in training).

  python train.py --config configs/folder.py --workdir workdirs/mine --config.data.dir=/path/to/images

``data.dir`` (required) is ``ROOT/<class>/<image>`` or ``ROOT/<group>/<class>/<image>``, a folder or a
.zip of one (see siamjax/data/folder.py for the layout rules, formats and what happens to bad files).
Every key not set here keeps its default: siamjax/config_layout.py lists them all (holdout_classes,
val_classes, split_by, val_fraction, lazy, channels, invert, crop_to_ink, ...) and explains each.
"""
import ml_collections

from siamjax.config_layout import upgrade_config


def get_config() -> ml_collections.ConfigDict:
    return upgrade_config({
        "seed": 0,
        # data.dir is required: the image folder or zip (an empty value is refused). data.invert "auto"
        # flips each image whose mean is light (photos: --config.data.invert=false).
        "data": {"source": "folder", "dir": "", "image_size": 28, "channels": 1, "invert": "auto"},
        # The validation part needs at least val_ways classes (with val_fraction=0.2, 25 classes or more);
        # 5 suits small datasets, raise it for large ones.
        "eval": {"val_ways": 5},
    })
