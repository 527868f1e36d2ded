"""Your own images: a twin trained on a class-per-subfolder image folder (or a zip of one), validated
on held-out classes (one-shot tasks among classes never seen in training).

  python train.py --config configs/folder.py --workdir workdirs/mine --config.data_dir=/path/to/images

``data_dir`` (required) is ``ROOT/<class>/<image>`` or ``ROOT/<group>/<class>/<image>``, a folder or a
.zip of one (see siamjax/data/folder.py for the layout rules, formats and what happens to bad files).
"""
import ml_collections

from siamjax.configs.common import add_training


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    # Data.
    c.data = "folder"
    c.data_dir = ""  # required: the image folder or zip (an empty value is refused)
    # --config.data=tfds:NAME reads a prepared TensorFlow Datasets dataset instead (tfds:omniglot: the
    # val_alphabets are held out of tfds_train_split). "" = TFDS's default folder ($TFDS_DATA_DIR or
    # ~/tensorflow_datasets).
    c.tfds_data_dir = ""
    c.tfds_train_split = "train"
    # Classes never used for training or validation (kept for testing), as fnmatch patterns of class names
    # ("class" or "group/class"), e.g. ("s3[1-9]", "s40").
    c.holdout_classes = ()
    # Validation classes (fnmatch patterns), e.g. whole writers; when set, split_by / val_fraction are unused.
    c.val_classes = ()
    c.split_by = "class"  # validation part: "class" = held-out classes (one-shot); "image" = held-out images
    c.val_fraction = 0.2  # share of the classes (or of each class's images) held out for validation
    # "auto": decode all images at start unless there are more than 20,000 (or > 256 MB once decoded),
    # then decode on demand with an LRU cache; "yes" always on demand; "no" always at start.
    c.lazy = "auto"
    c.cache_items = 4096  # lazy reading: decoded images kept in memory (least recently used dropped)
    c.max_bad_fraction = 0.01  # corrupt / oversized / wrong-format files skipped up to this share; above it, an error
    c.max_pixels = 50_000_000  # images declaring more pixels are never decoded (decompression-bomb guard)
    c.min_images_per_class = 2  # classes with fewer usable images are excluded (no positive pair)
    c.image_size = 28  # every image is resized (antialiased) to image_size^2
    c.channels = 1  # 1 = grey, 3 = RGB
    # Polarity: "auto" flips each image whose mean is light (dark ink/object on light paper -> high values);
    # "true" flips every image, "false" none (photos: --config.invert=false).
    c.invert = "auto"
    # Documents (signatures, scans): crop to the ink's bounding box (pixels above ink_threshold once ink is
    # high, widened by crop_margin x the box's longer side); keep_aspect resizes the longer side to
    # image_size and pads the shorter one (centred, background 0) instead of stretching.
    c.crop_to_ink = False
    c.ink_threshold = 0.5
    c.crop_margin = 0.02
    c.keep_aspect = False
    # crop_frame="moments" crops instead to a square centred on the ink's centre of mass, of half-side
    # crop_radius x the ink's RMS distance from it (siamjax.data.preprocess; crop_margin then unused).
    c.crop_frame = "box"
    c.crop_radius = 2.0
    # A checkpoint (workdir or step folder) of the same model, head and image shape whose weights start a
    # fresh run (e.g. one trained on Omniglot); "" = random initialisation.
    c.init_from = ""
    # The validation part needs at least val_ways classes (with val_fraction=0.2, 25 classes or more);
    # 5 suits small datasets, raise it for large ones.
    add_training(c, val_ways=5)
    return c
