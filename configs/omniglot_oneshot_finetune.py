"""A probe of recipe round 3 (docs/omniglot_history.md; not part of pretrained/omniglot): continue a
trained configs/omniglot_oneshot.py model for 1,500 steps on batches drawn from one alphabet (and
symmetry) at a time, so that training looks like Lake's within-alphabet test. Validation on the five
held-out background alphabets; set init_from to a model trained with them held out:

  python train.py --config configs/omniglot_oneshot.py --workdir workdirs/omniglot_oneshot25 \
      --config.val_alphabets="('Bengali','Futurama','Hebrew','Japanese_(katakana)','Tifinagh')"
  python train.py --config configs/omniglot_oneshot_finetune.py --workdir workdirs/finetune_g1 \
      --config.init_from=workdirs/omniglot_oneshot25
  # the control: the same fine-tuning on ordinary batches
  python train.py --config configs/omniglot_oneshot_finetune.py --workdir workdirs/finetune_g0 \
      --config.init_from=workdirs/omniglot_oneshot25 --config.groups_per_batch=0
"""
import ml_collections

from configs import omniglot_oneshot


def get_config() -> ml_collections.ConfigDict:
    c = omniglot_oneshot.get_config()
    c.val_alphabets = ("Bengali", "Futurama", "Hebrew", "Japanese_(katakana)", "Tifinagh")
    c.init_from = ""  # a checkpoint of configs/omniglot_oneshot.py (same model and image size)
    c.groups_per_batch = 1
    c.learning_rate = 1e-3
    c.warmup_steps = 100
    c.train_steps = 1500
    c.eval_every = 500
    c.checkpoint_every = 500
    return c
