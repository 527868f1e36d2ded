"""Recipe round 15 (README "One-shot Omniglot"): configs/omniglot_oneshot_proxies_crop.py (characters
cropped to their ink, 32 px, proxy loss, 4,000 steps) with the conv-4 blocks of
configs/omniglot_oneshot_pyramid.py: 64, 128, 256, 256 channels instead of 4 x 128, a 2 x 2 x 256 =
1024-d embedding and about 1.1x the step cost. A cropped model that differs from the three cropped
seeds in more than its seed, at the same size (about 2.1 MB in float16). Run on 29 alphabets
(Futurama held out) as a candidate member of pretrained/omniglot:

  python train.py --config configs/omniglot_oneshot_proxies_crop_pyramid.py \
      --workdir workdirs/omniglot_proxiescroppyramid_seed0
"""
import ml_collections

from configs import omniglot_oneshot_proxies_crop


def get_config() -> ml_collections.ConfigDict:
    c = omniglot_oneshot_proxies_crop.get_config()
    c.model_kwargs = ml_collections.ConfigDict({"widths": (64, 128, 256, 256)})
    return c
