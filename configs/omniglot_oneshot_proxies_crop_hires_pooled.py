"""Recipe round 28 (docs/omniglot_history.md): configs/omniglot_oneshot_proxies_crop_hires.py (64 px,
cropped to the ink, five blocks, class proxies, 4,000 steps) with round 20's test-time block pooling
trained into the network: ``model_kwargs.pooled_block=-2`` makes the embedding [unit(last map, 1024-d),
sqrt(2) * unit(the second-to-last block's maximum over positions, 256-d)] (1,280-d, no new weights), so
the prototypical and proxy losses train the position-free mid-level features that round 20 only added
afterwards. Seed 0, 29 alphabets (Futurama held out):

  python train.py --config configs/omniglot_oneshot_proxies_crop_hires_pooled.py \\
      --workdir workdirs/omniglot_proxiescrophirespooled_seed0
"""
import ml_collections

from configs import omniglot_oneshot_proxies_crop_hires


def get_config() -> ml_collections.ConfigDict:
    c = omniglot_oneshot_proxies_crop_hires.get_config()
    c.model_kwargs.pooled_block = -2
    c.model_kwargs.pooled_weight = 2.0
    return c
