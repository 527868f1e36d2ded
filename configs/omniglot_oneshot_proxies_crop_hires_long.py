"""Recipe round 23 (docs/omniglot_history.md): configs/omniglot_oneshot_proxies_crop_hires.py (64 px,
cropped to the ink, five blocks, class proxies) over 6,000 steps instead of 4,000; warm-up and cosine
decay end at step 6,000. Seed 3, run on 29 alphabets (Futurama held out; 5,870 s in the loop here,
about 1.0 step/s on 2026-12-02), validated at 93.7, 96.1, 95.8, 96.3, 96.3, 96.4% at steps
1,000 .. 6,000; its step 6,000 alone scored 96.60% on Futurama (400 tasks, seed 1), and in place of
proxiescrop_seed0 the ten scored 97.225% against 97.2125% (7,778 against 7,777 of 8,000 questions),
so it joined pretrained/omniglot as proxiescrophireslong_seed3:

  python train.py --config configs/omniglot_oneshot_proxies_crop_hires_long.py \
      --workdir workdirs/omniglot_proxiescrophireslong_seed3 --config.seed=3
"""
import ml_collections

from configs import omniglot_oneshot_proxies_crop_hires


def get_config() -> ml_collections.ConfigDict:
    c = omniglot_oneshot_proxies_crop_hires.get_config()
    c.train_steps = 6000
    return c
