"""SiamFC tracking: a fully-convolutional twin trained on synthetic sequences generated from the
shared images' training material (Omniglot background, faces s1-s30, MNIST, signature writers
049-062), validated by tracking held-out generated sequences of the same material.

  python train.py --config configs/siamfc.py --workdir workdirs/siamfc
  python -m siamjax.tracking.synthetic --data ../shared/data --split test --num 20 --out /tmp/synth_test
  python eval.py track --checkpoint workdirs/siamfc --sequences /tmp/synth_test --out_dir /tmp/siamfc_eval

--config.data=folder --config.data_dir=PATH trains on OTB / GOT-10k sequence folders instead
(config.val_data_dir: the validation sequences' folder).
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "siamfc"
    c.seed = 0
    # Data: synthetic (sequences drawn on the fly from config.data_dir's images: train split) | folder
    c.data = "synthetic"
    c.data_dir = "../shared/data"
    c.val_data_dir = ""  # folder data: OTB / GOT-10k validation sequences (required then)
    # synthetic: the pool of generated sequences (each made when first needed, ~50 ms and 0.3 MB). A step
    # draws its pairs from sequence_window consecutive ones, which move on every window_steps steps
    # (0 = draw from the whole pool every step: then keep it small enough to stay in memory).
    c.train_sequences = 100_000
    c.sequence_window = 64
    c.window_steps = 50
    c.frames = 100  # synthetic: frames per sequence
    c.frame_size = (240, 320)  # synthetic: height, width
    c.val_sequences = 16  # synthetic validation sequences (other seeds than training), tracked whole
    c.val_frames = 100
    # Geometry: SiamFC's 127 / 255 crops halved; 9x9 response, stride 8.
    c.exemplar_size = 63
    c.search_size = 127
    c.context = 0.5  # exemplar side = sqrt((w + p)(h + p)), p = context * (w + h)
    # Pairs: two frames at most max_gap apart; search-crop scale and shift jitter.
    c.max_gap = 50
    c.scale_jitter = 0.08
    c.shift_px = 24.0  # search-crop px (= 3 response cells)
    c.positive_radius = 16.0  # search-crop px: response cells this close to the target are positives
    # Model and optimiser.
    c.widths = (24, 48, 96, 128)
    c.batch_size = 16  # pairs per step (global)
    c.optimizer = "adam"
    c.learning_rate = 1e-3
    c.weight_decay = 0.0
    c.warmup_steps = 100
    c.train_steps = 4000
    # The tracker used for validation (and stored with the checkpoint): SiamFC's published settings.
    c.tracker = ml_collections.ConfigDict(dict(
        scales=3, scale_step=1.0375, scale_penalty=0.9745, scale_lr=0.59, window_influence=0.176, response_up=16))
    # Devices and bookkeeping.
    c.parallel = "pmap"
    c.num_devices = 0
    c.log_every = 25
    c.eval_every = 500
    c.checkpoint_every = 500
    c.keep_latest = 2
    c.keep_best = 1
    return c
