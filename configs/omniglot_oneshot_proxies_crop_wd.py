"""Recipe round 19 (docs/omniglot_history.md): configs/omniglot_oneshot_proxies_crop.py (characters
cropped to their ink, 32 px, proxy loss, 4,000 steps) with decoupled weight decay: AdamW, weight decay
0.1 (every parameter; the update subtracts learning rate x 0.1 x the parameter each step) instead of
Adam without any. Every earlier recipe trained without weight decay and ends near 99% right on its
training batches; this run asks whether that regulariser makes a stronger single model. Seed 0, on 29
alphabets (Futurama held out), its validation tasks are those of proxiescrop_seed0 (92.3, 94.9, 95.8,
96.0% at steps 1,000 .. 4,000):

  python train.py --config configs/omniglot_oneshot_proxies_crop_wd.py \
      --workdir workdirs/omniglot_proxiescropwd_seed0

It validated at 92.4 and 94.9% at steps 1,000 and 2,000 (without the decay: 92.3, 94.9%) and was stopped
there (step 2,076; the same command resumes it): no effect so far, so not a recipe of pretrained/omniglot.
"""
import ml_collections

from configs import omniglot_oneshot_proxies_crop


def get_config() -> ml_collections.ConfigDict:
    c = omniglot_oneshot_proxies_crop.get_config()
    c.optimizer = "adamw"
    c.weight_decay = 0.1
    return c
