"""Recipe round 12 (docs/omniglot_history.md): configs/omniglot_oneshot_proxies.py on images cropped
to their ink: each 105 x 105 character is cut to the bounding box of its strokes, widened by 10% of the
box's longer side on each side, and that longer side resized to 32 px (the shorter one padded,
centred). A median character covers 68 of the canvas's 105 px, so it reaches the encoder about 1.5x
larger, and drawers who write small or off-centre no longer differ from those who do not; the step
costs the same. Chosen on the five held-out background alphabets with the round-2 protocol (64
channels, turns only, 2,000 steps): 86.6% against 85.3% uncropped (86.2% against 83.2% at 1,000 steps):

  python train.py --config configs/omniglot_oneshot.py --workdir /tmp/probe/crop10 \
      --config.train_steps=2000 --config.eval_every=1000 --config.model_kwargs.width=64 \
      --config.mirror_classes=False \
      --config.val_alphabets="('Bengali','Futurama','Hebrew','Japanese_(katakana)','Tifinagh')" \
      --config.crop_to_ink=True --config.keep_aspect=True --config.crop_margin=0.1

The schedule is 4,000 steps instead of 10,000 (warm-up and cosine decay end there) so that a run fits
in one session on this machine's 2 CPU cores (about 1 step/s on 2026-12-01). Seed 0, run on 29
alphabets (Futurama held out; 66 min 28 s, 3,985 s in the loop), validated at 92.3, 94.9, 95.8, 96.0%
at steps 1,000 .. 4,000 (the uncropped recipe: 90.0, 92.0, 93.3, 92.5%, 94.4% at its end), and eleven
whitened models with it scored 96.33% on Futurama against 96.06% for the ten without, so it joined
pretrained/omniglot as proxiescrop_seed0:

  python train.py --config configs/omniglot_oneshot_proxies_crop.py \
      --workdir workdirs/omniglot_proxiescrop_seed0

Seed 1 (round 13; about 65 min, 3,884 s in the loop) validated at 93.3, 94.3, 94.8, 95.1% on its seed's
Futurama tasks; it replaced seed0 and seed1 of configs/omniglot_oneshot.py in pretrained/omniglot, whose
ten members then scored 96.55% on Futurama against 96.33% for the eleven:

  python train.py --config configs/omniglot_oneshot_proxies_crop.py \
      --workdir workdirs/omniglot_proxiescrop_seed1 --config.seed=1

Seed 2 (round 14; 4,576 s in the loop) validated at 93.9, 94.5, 95.6, 95.5%; its last step replaced
proxieswide_seed0, and the ten then scored 96.65% on Futurama against 96.55%:

  python train.py --config configs/omniglot_oneshot_proxies_crop.py \
      --workdir workdirs/omniglot_proxiescrop_seed2 --config.seed=2

Seed 3 (round 22; 2,834 s in the loop, 1.36 steps/s) validated at 93.8, 95.7, 96.1, 96.2%; in place of
proxiescrop_seed0 its step 4,000 made the ten score 97.15% on Futurama against the bar of 97.21%, so it
did not join.
"""
import ml_collections

from configs import omniglot_oneshot_proxies


def get_config() -> ml_collections.ConfigDict:
    c = omniglot_oneshot_proxies.get_config()
    c.crop_to_ink = True
    c.keep_aspect = True
    c.crop_margin = 0.1
    c.train_steps = 4000
    return c
