"""Writer-independent offline signature verification: SigComp2011 Dutch (the "sign_data" test split).

  python train.py --config configs/signatures.py --workdir workdirs/signatures

The zip holds ``sign_data/Dataset/test/<WWW>/`` (12 genuine signatures of writer WWW) and
``<WWW>_forg/`` (skilled forgeries of WWW), 21 writers 049..069; each folder is read as its own class,
so a writer's forgeries are negatives of that writer in every triplet batch. Writers 063..069 are the
test set (``holdout_classes``: never trained on nor validated on); writers 060..062 (genuine and forgery
folders together, ``val_classes``) validate; 049..059 train. Scans (RGB, 355x190 to 1372x778, dark ink on
light paper) are made grey with ink high, cropped to their ink and resized keeping their aspect.
Evaluation on ``test_data.csv`` pairs of the test writers: see README, "Signatures (SigComp2011 Dutch)".
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    # Data.
    c.data = "folder"
    c.data_dir = "../shared/data/signatures_sigcomp2011_dutch/sign_data_test.zip"
    # --config.data=tfds:NAME reads a prepared TensorFlow Datasets dataset instead (tfds:omniglot: the
    # val_alphabets are held out of tfds_train_split). "" = TFDS's default folder ($TFDS_DATA_DIR or
    # ~/tensorflow_datasets).
    c.tfds_data_dir = ""
    c.tfds_train_split = "train"
    # Classes never used for training or validation (kept for testing), as fnmatch patterns of class names
    # ("class" or "group/class"), e.g. ("s3[1-9]", "s40").
    c.holdout_classes = ("06[3-9]", "06[3-9]_forg")  # test writers 063..069: genuine and forgeries
    # Validation classes (fnmatch patterns): whole writers, genuine and forgery folders on the same side.
    # When set, split_by / val_fraction are not used.
    c.val_classes = ("06[0-2]", "06[0-2]_forg")
    c.split_by = "class"  # validation part: "class" = held-out classes (one-shot); "image" = held-out images
    c.val_fraction = 0.2  # share of the classes (or of each class's images) held out for validation
    # "auto": decode all images at start unless there are more than 20,000 (or > 256 MB once decoded),
    # then decode on demand with an LRU cache; "yes" always on demand; "no" always at start.
    c.lazy = "auto"
    c.cache_items = 4096  # lazy reading: decoded images kept in memory (least recently used dropped)
    c.max_bad_fraction = 0.01  # corrupt / oversized / wrong-format files skipped up to this share; above it, an error
    c.max_pixels = 50_000_000  # images declaring more pixels are never decoded (decompression-bomb guard)
    c.min_images_per_class = 2  # classes with fewer usable images are excluded (no positive pair)
    c.image_size = 64  # every image is resized (antialiased) to image_size^2 (keep_aspect: its longer side)
    c.channels = 1  # 1 = grey, 3 = RGB
    # Polarity: "auto" flips each image whose mean is light (dark ink/object on light paper -> high values);
    # True flips every image, False none. Photos: use False.
    c.invert = "auto"
    # Signatures are small on large pages: crop to the ink's bounding box (pixels above ink_threshold once
    # ink is high, widened by crop_margin x the box's longer side), then resize the longer side to
    # image_size and pad the shorter one (centred, background 0) instead of stretching.
    c.crop_to_ink = True
    c.ink_threshold = 0.25  # these scans' strokes are light grey (often 0.3-0.5 once inverted)
    c.crop_margin = 0.02
    c.keep_aspect = True
    # A checkpoint (workdir or step folder) of the same model, head and image shape whose weights start
    # a fresh run (e.g. one trained on Omniglot with --config.image_size=64); "" = random initialisation.
    c.init_from = ""
    # Model: encoder, its keyword overrides, comparison head.
    c.model = "conv4"
    c.model_kwargs = ml_collections.ConfigDict()
    c.head = "cosine"  # euclidean | cosine | correlation | koch
    c.compute_dtype = "float32"  # float32 | bfloat16 (training step only; see configs/omniglot.py)
    # Loss: triplet (P x K batches with online mining) | contrastive | bce (balanced pair batches).
    c.loss = "triplet"
    c.margin = 0.2
    c.mining = "semihard"  # triplet only: all | hard | semihard
    c.triplet_reduction = "avg_nonzero"  # mean over active triplets | mean (over all mined)
    c.images_per_class = 4  # K of a P x K batch (triplet); P = batch_size // K (classes with fewer images repeat)
    # Pair batches: share of negatives drawn from the same group (two-level layouts; one group: no effect).
    c.same_alphabet_negatives = 0.5
    c.batch_size = 88  # 22 training classes x 4: every writer and its forgeries in every batch. Global: images per step (triplet) or pairs per step (contrastive, bce)
    # Optimiser.
    c.optimizer = "adam"  # adam | adamw | sgd
    c.learning_rate = 3e-3
    c.weight_decay = 0.0
    c.warmup_steps = 30
    c.train_steps = 350
    # Affine distortions (Koch et al.'s ranges), on device, each image independently.
    c.augment = ml_collections.ConfigDict(dict(
        enabled=True, rotation_deg=10.0, shear=0.3, scale_min=0.8, scale_max=1.2,
        translate_px=2.0 * 64 / 105, prob=0.5))
    # Data parallelism: the global batch is split over num_devices local devices (0 = all).
    c.parallel = "pmap"  # pmap | shard_map
    c.num_devices = 0
    # Bookkeeping.
    c.log_every = 25
    c.eval_every = 50
    c.checkpoint_every = 50
    c.val_episodes = 200  # one-shot validation episodes (val_ways questions each)
    # N of the N-way one-shot validation tasks: the validation part needs at least val_ways classes
    # (with val_fraction=0.2, 25 classes or more); 5 suits small datasets, raise it for large ones.
    c.val_ways = 5
    c.keep_latest = 2
    c.keep_best = 1
    return c
