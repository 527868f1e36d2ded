"""Recipe round 16 (docs/omniglot_history.md): configs/omniglot_oneshot_proxies_crop.py (characters
cropped to their ink, 32 px, proxy loss, 4,000 steps) with the wide blocks of
configs/omniglot_oneshot_proxies_wide.py: 96, 192, 384, 384 channels instead of the 64, 128, 256, 256
the cropped recipe inherits from configs/omniglot_oneshot_pyramid.py. 2.25x the weights (2.16M, about
4.4 MB in float16), a 2 x 2 x 384 = 1536-d embedding and about 1.8x the step cost. Run on 29
alphabets (Futurama held out); its step 4,000 joined pretrained/omniglot as proxiescropwide_seed0 in
round 16, in place of pyramid_seed0 (the new ten scored 96.69% on Futurama against 96.65%; 6,438 s in
the loop here, 0.62 steps/s; ``make pretrained-omniglot`` runs it):

  python train.py --config configs/omniglot_oneshot_proxies_crop_wide.py \
      --workdir workdirs/omniglot_proxiescropwide_seed0
"""
import ml_collections

from configs import omniglot_oneshot_proxies_crop, omniglot_oneshot_proxies_wide


def get_config() -> ml_collections.ConfigDict:
    c = omniglot_oneshot_proxies_crop.get_config()
    c.model_kwargs = omniglot_oneshot_proxies_wide.get_config().model_kwargs  # 96, 192, 384, 384
    return c
