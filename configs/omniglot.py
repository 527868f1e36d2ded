"""Omniglot one-shot: a conv-4 twin trained on images_background, validated on held-out background
alphabets (20-way within-alphabet one-shot), never on the evaluation alphabets.

  python train.py --config configs/omniglot.py --workdir workdirs/omniglot
  python eval.py --checkpoint workdirs/omniglot --data_dir ../shared/data/omniglot
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    # Data: the folder holding images_background.zip / images_evaluation.zip (or extracted folders).
    c.data = "omniglot"
    c.data_dir = "../shared/data/omniglot"
    c.image_size = 28  # Omniglot's 105x105 strokes, resized (area-averaged) to image_size^2
    c.invert = True  # Omniglot PNGs are dark ink on white: make ink the high value
    # --config.data=tfds:NAME reads a prepared TensorFlow Datasets dataset instead (tfds:omniglot: the
    # val_alphabets are held out of tfds_train_split). "" = TFDS's default folder ($TFDS_DATA_DIR or
    # ~/tensorflow_datasets).
    c.tfds_data_dir = ""
    c.tfds_train_split = "train"
    c.alphabets = ()  # background alphabets to read (empty = all 30); must include val_alphabets
    # Background alphabets held out of training for validation (model selection) tasks.
    c.val_alphabets = ("Bengali", "Futurama", "Hebrew", "Japanese_(katakana)", "Tifinagh")
    # Model: encoder, its keyword overrides, comparison head.
    c.model = "conv4"
    c.model_kwargs = ml_collections.ConfigDict()
    c.head = "cosine"  # euclidean | cosine | correlation | koch
    # Training-step precision: float32 | bfloat16. bfloat16 runs the encoder's activations, convolutions
    # and matrix products in bfloat16 while parameters, optimizer state, BatchNorm statistics, embeddings,
    # head and loss stay float32 (no loss scaling needed). Validation, eval.py and siamjax.load compute in
    # float32. May change when a run is resumed.
    c.compute_dtype = "float32"
    # Loss: triplet (P x K batches with online mining) | contrastive | bce (balanced pair batches).
    c.loss = "triplet"
    c.margin = 0.2
    c.mining = "semihard"  # triplet only: all | hard | semihard
    c.triplet_reduction = "avg_nonzero"  # mean over active triplets (pml's default) | mean (over all mined)
    c.images_per_class = 4  # K of a P x K batch (triplet); P = batch_size // K
    c.same_alphabet_negatives = 0.5  # pair batches: share of negatives drawn from the same alphabet
    c.batch_size = 128  # global: images per step (triplet) or pairs per step (contrastive, bce)
    # Optimiser.
    c.optimizer = "adam"  # adam | adamw | sgd
    c.learning_rate = 3e-3
    c.weight_decay = 0.0
    c.warmup_steps = 50
    c.train_steps = 1500
    # Koch et al.'s affine distortions, on device, each image independently.
    c.augment = ml_collections.ConfigDict(dict(
        enabled=True, rotation_deg=10.0, shear=0.3, scale_min=0.8, scale_max=1.2,
        translate_px=2.0 * 28 / 105, prob=0.5))
    # Data parallelism: the global batch is split over num_devices local devices (0 = all).
    c.parallel = "pmap"  # pmap | shard_map (jit + shard_map over a device mesh)
    c.num_devices = 0
    # Bookkeeping.
    c.log_every = 25
    c.eval_every = 250
    c.checkpoint_every = 250
    c.val_episodes = 100  # 20-way within-alphabet one-shot episodes (20 questions each)
    c.val_ways = 20
    c.keep_latest = 2
    c.keep_best = 1
    return c
