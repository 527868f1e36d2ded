"""Recipe round 29 (docs/omniglot_history.md): configs/omniglot_oneshot_proxies_crop.py (32 px characters
cropped to their ink, proxy loss, 4,000 steps) with the small residual encoder instead of conv4, so
that a member differs from every shipped one in its architecture: a 3 x 3 stem of 32 channels, one
basic block per stage of 32, 64, 128, 256 channels (stride 2 after the first: 32 -> 4 px), and the
average over positions of the last map as a 256-d embedding (no projection). Every shipped member
flattens its last map, so its embedding is tied to where strokes lie; this one is not. A step costs
about the same as the 64 px cropped recipe here (about 1.1 steps/s on 2026-12-03):

  python train.py --config configs/omniglot_oneshot_proxies_crop_resnet.py \
      --workdir workdirs/omniglot_proxiescropresnet_seed0

Seed 0 (3,669 s in the loop) validated at 91.6, 91.7, 94.8, 95.3% at steps 1,000 .. 4,000 on its seed's
Futurama tasks (the conv4 recipe: 92.3, 94.9, 95.8, 96.0%); its step 4,000 scored 94.89% alone on
Futurama and 7,761 of 8,000 with round 24's nine, under their 7,780, so it did not join.
"""
import ml_collections

from configs import omniglot_oneshot_proxies_crop


def get_config() -> ml_collections.ConfigDict:
    c = omniglot_oneshot_proxies_crop.get_config()
    c.model = "resnet"
    c.model_kwargs = ml_collections.ConfigDict(
        {"stage_widths": (32, 64, 128, 256), "stem_width": 32, "embed_dim": 0})
    return c
