"""Settings shared by every config: model, loss, optimiser, augmentation, devices and bookkeeping.

``add_training(c)`` fills a config that already holds its data keys; the dataset configs
(omniglot.py, folder.py and those built on it) then change what differs.
"""
import ml_collections


def add_training(c: ml_collections.ConfigDict, val_ways: int) -> ml_collections.ConfigDict:
    # Model: encoder, its keyword overrides, comparison head.
    c.model = "conv4"
    c.model_kwargs = ml_collections.ConfigDict()
    c.head = "cosine"  # euclidean | cosine | correlation | koch
    # Training-step precision: float32 | bfloat16. bfloat16 runs the encoder's activations, convolutions
    # and matrix products in bfloat16 while parameters, optimizer state, BatchNorm statistics, embeddings,
    # head and loss stay float32 (no loss scaling needed). Validation, eval.py and siamjax.load compute in
    # float32. May change when a run is resumed.
    c.compute_dtype = "float32"
    # Loss: triplet (P x K batches with online mining) | proto (prototypical, P x K batches) |
    # contrastive | bce (balanced pair batches).
    c.loss = "triplet"
    c.margin = 0.2
    c.mining = "semihard"  # triplet only: all | hard | semihard
    c.triplet_reduction = "avg_nonzero"  # mean over active triplets (pml's default) | mean (over all mined)
    c.images_per_class = 4  # K of a P x K batch (triplet, proto); P = batch_size // K (short classes repeat)
    c.proto_temperature = 0.1  # proto: logits = -squared distance / temperature
    # triplet / proto: add proxy_weight x a cosine softmax over one learned vector per training class
    # (CosFace: logits = proxy_scale * (cosine - proxy_margin at the image's own class)); 0 = off.
    c.proxy_weight = 0.0
    c.proxy_scale = 10.0
    c.proxy_margin = 0.1
    c.proxy_lr_multiplier = 1.0  # the proxies' learning rate over the encoder's
    # P x K batches: 0 spreads the P classes over all groups; G > 0 draws them from G groups (alphabets).
    c.groups_per_batch = 0
    # Training images turned by 90/180/270 degrees become new classes (4x the classes; square images).
    c.rotate_classes = False
    # ... and mirror images (left-right) too, after any turns (8x the classes with both).
    c.mirror_classes = False
    # Pair batches: share of negatives drawn from the same group (alphabet; one group: no effect).
    c.same_alphabet_negatives = 0.5
    c.batch_size = 128  # global: images per step (triplet) or pairs per step (contrastive, bce)
    # Optimiser.
    c.optimizer = "adam"  # adam | adamw | sgd
    c.learning_rate = 3e-3
    c.weight_decay = 0.0
    c.warmup_steps = 50
    c.train_steps = 1500
    # Koch et al.'s affine distortions, on device, each image independently (translation at 28 px).
    c.augment = ml_collections.ConfigDict(dict(
        enabled=True, rotation_deg=10.0, shear=0.3, scale_min=0.8, scale_max=1.2,
        translate_px=2.0 * 28 / 105, prob=0.5))
    # Handwriting distortions after the affine ones (siamjax.data.views keys; supervised losses; all off here):
    # a smooth elastic field (longest vector elastic_alpha px) with probability elastic_prob, and a 3 x 3
    # stroke dilation or erosion with probability stroke_prob.
    c.train_views = ml_collections.ConfigDict(dict(
        elastic_prob=0.0, elastic_alpha=0.0, elastic_sigma=3.0, stroke_prob=0.0))
    # Data parallelism: the global batch is split over num_devices local devices (0 = all).
    c.parallel = "pmap"  # pmap | shard_map (jit + shard_map over a device mesh)
    c.num_devices = 0
    # Bookkeeping.
    c.log_every = 25
    c.eval_every = 250
    c.checkpoint_every = 250
    c.val_episodes = 100  # one-shot validation episodes (val_ways questions each)
    c.val_ways = val_ways  # N of the N-way one-shot validation tasks
    c.keep_latest = 2
    c.keep_best = 1
    return c
