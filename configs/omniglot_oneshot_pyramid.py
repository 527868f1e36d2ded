"""The fourth model of ``pretrained/omniglot`` from recipe round 4 to round 15 (docs/omniglot_history.md; since
round 16 in ``pretrained/omniglot_retired/pyramid_seed0``), and the base of the proxy recipes:
configs/omniglot_oneshot.py with conv-4 blocks of 64, 128, 256, 256 channels instead of 4 x 128. The
wide blocks run on the small maps, so a step costs 1.1x as much; the encoder has twice the weights
(960k) and a 2 x 2 x 256 = 1024-d embedding. Chosen with round 2's 2,000-step protocol on the five
held-out background alphabets (89.1% against 87.3% for 4 x 128):

  python train.py --config configs/omniglot_oneshot_pyramid.py --workdir workdirs/pyramid_probe \
      --config.train_steps=2000 --config.eval_every=1000 --config.mirror_classes=False \
      --config.val_alphabets="('Bengali','Futurama','Hebrew','Japanese_(katakana)','Tifinagh')"

The retired member is one full run (29 alphabets, Futurama held out):

  python train.py --config configs/omniglot_oneshot_pyramid.py --workdir workdirs/omniglot_pyramid_seed0
"""
import ml_collections

from configs import omniglot_oneshot


def get_config() -> ml_collections.ConfigDict:
    c = omniglot_oneshot.get_config()
    c.model_kwargs = ml_collections.ConfigDict({"widths": (64, 128, 256, 256)})
    return c
