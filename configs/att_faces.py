"""Faces: a twin for face verification on the AT&T / ORL "Database of Faces" (40 people x 10 grey
photos of 92x112, ../shared/data/att_faces/att_faces.zip, read in place).

  python train.py --config configs/att_faces.py --workdir workdirs/att_faces

Protocol: identities s31..s40 are the test set (``holdout_classes``): they are dropped before the
train / validation split and never seen in training or model selection. Of s1..s30, ``val_fraction``
of the identities (chosen by ``seed``) are held out for validation (model selection and the
verification threshold); the rest are trained on. See README, "Faces (AT&T / ORL)".
pretrained/att_faces is this config's best/350 (800 steps, 519 s on 2 shared CPU cores): validation EER 5.1%,
test EER 8.9%, AUC 0.964.
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    # Data.
    c.data = "folder"
    c.data_dir = "../shared/data/att_faces/att_faces.zip"
    c.tfds_data_dir = ""
    c.tfds_train_split = "train"
    # The test identities: never used for training or validation.
    c.holdout_classes = ("s3[1-9]", "s40")
    c.split_by = "class"  # validation identities are disjoint from the training identities
    c.val_fraction = 0.25  # round(0.25 * 30) = 8 validation identities, 22 trained on
    c.lazy = "auto"
    c.cache_items = 4096
    c.max_bad_fraction = 0.01
    c.max_pixels = 50_000_000
    c.min_images_per_class = 2
    c.image_size = 64  # 92x112 -> 64x64 (antialiased; a mild aspect change)
    c.channels = 1  # the photos are grey
    c.invert = False  # photos: keep polarity
    # Model: the four-block conv net, 64 -> 4x4x64 = 1024 features -> 128-d embedding, cosine head.
    c.model = "conv4"
    c.model_kwargs = ml_collections.ConfigDict(dict(embed_dim=128))
    c.head = "cosine"
    c.compute_dtype = "float32"
    # Loss: triplet with batch-hard mining over P x K batches (16 identities x 4 photos): each anchor's
    # farthest positive and nearest negative, margin 0.5 on the L2-normalised embeddings.
    c.loss = "triplet"
    c.margin = 0.5
    c.mining = "hard"
    c.triplet_reduction = "avg_nonzero"
    c.images_per_class = 4
    c.same_alphabet_negatives = 0.5  # pair losses only; one group here: no effect
    c.batch_size = 64
    # Optimiser.
    c.optimizer = "adam"
    c.learning_rate = 3e-3
    c.weight_decay = 0.0
    c.warmup_steps = 50
    c.train_steps = 800
    # Distortions milder than Koch's (faces, not strokes): small rotation, scale and shift (5 px of 64),
    # little shear; each component applied with probability 0.8 (22 identities of 10 photos: augmentation
    # matters).
    c.augment = ml_collections.ConfigDict(dict(
        enabled=True, rotation_deg=10.0, shear=0.05, scale_min=0.85, scale_max=1.15,
        translate_px=5.0, prob=0.8))
    c.parallel = "pmap"
    c.num_devices = 0
    # Bookkeeping.
    c.log_every = 25
    c.eval_every = 50
    c.checkpoint_every = 50
    c.val_episodes = 300
    c.val_ways = 8  # every validation identity in every task (8-way one-shot): less saturated than 5-way
    c.keep_latest = 1
    c.keep_best = 1
    return c
