"""Recipe round 17 (docs/omniglot_history.md): configs/omniglot_oneshot_proxies_crop.py (characters
cropped to their ink, proxy loss, 4,000 steps) at 64 px with the five blocks of
configs/omniglot_oneshot_proxies_hires.py (32, 64, 128, 256, 256 channels; a 2 x 2 x 256 = 1024-d
embedding), so that a cropped model differs from the cropped seeds in its input resolution. Koch's
+-2 px translations scale with the image. A step costs about 2.3x that of the 32 px cropped recipe.
Run on 29 alphabets (Futurama held out); its step 4,000 joined pretrained/omniglot as
proxiescrophires_seed0 in round 17, in place of proxies_seed1 (the new ten scored 96.80% on Futurama
against 96.69%; 7,499 s in the loop here, about 0.53 steps/s; ``make pretrained-omniglot`` runs it):

  python train.py --config configs/omniglot_oneshot_proxies_crop_hires.py \
      --workdir workdirs/omniglot_proxiescrophires_seed0

Seed 1 (round 18; 6,144 s in the loop, about 0.65 steps/s) validated at 93.9, 95.5, 95.9, 96.35% at
steps 1,000 .. 4,000 on its seed's Futurama tasks; its step 4,000 replaced proxies_seed0, and the ten
then scored 96.84% on Futurama against 96.80%:

  python train.py --config configs/omniglot_oneshot_proxies_crop_hires.py \
      --workdir workdirs/omniglot_proxiescrophires_seed1 --config.seed=1

Seed 2 (round 21; 4,158 s in the loop, 0.94 steps/s) validated at 94.5, 94.7, 95.95, 95.6%; in place of
proxiescrop_seed0 its step 4,000 made the ten score 97.19% on Futurama against the bar of 97.21%, so it
did not join. Round 23 ran this recipe over 6,000 steps (configs/omniglot_oneshot_proxies_crop_hires_long.py,
seed 3); that one joined.
"""
import ml_collections

from configs import omniglot_oneshot_proxies_crop, omniglot_oneshot_proxies_hires


def get_config() -> ml_collections.ConfigDict:
    c = omniglot_oneshot_proxies_crop.get_config()
    hires = omniglot_oneshot_proxies_hires.get_config()
    c.image_size = hires.image_size  # 64
    c.augment.translate_px = hires.augment.translate_px  # Koch's +-2 px at 105 px, scaled to 64
    c.model_kwargs = hires.model_kwargs  # 32, 64, 128, 256, 256
    return c
