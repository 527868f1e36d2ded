"""configs/omniglot.py:koch105, Koch et al.'s recipe at its real scale (meant for a GPU host), runs on the CPU:
a few steps of tiny batches on a slice of the real Omniglot zip train (finite losses) and write a checkpoint
that siamjax.load reads back as a 105 x 105 Koch twin."""
import numpy as np

import siamjax
from configs import omniglot as omniglot_config
from siamjax import checkpoint as ckpt_lib
import siamjax.train as train_lib
from siamjax.train.metric_writer import read_metrics


def test_the_recipe_is_kochs_setting():
    c = omniglot_config.get_config("koch105")
    assert (c.data.image_size, c.model.name, c.model.head, c.loss.name) == (105, "koch", "koch", "bce")
    assert c.data.batch_size == 128  # Koch's minibatch, in pairs
    a = c.augment
    assert a.enabled and (a.rotation_deg, a.shear, a.scale_min, a.scale_max, a.translate_px, a.prob) == (
        10.0, 0.3, 0.8, 1.2, 2.0, 0.5)
    assert c.optim.train_steps >= 50_000  # a GPU's schedule, not a CPU's
    spec = train_lib.preprocessing_from_config(c)
    assert spec.size == 105 and not spec.crop_to_ink  # the canvas as it is


def test_the_recipe_trains_a_few_steps_on_the_cpu(omniglot_dir, tmp_path):
    c = omniglot_config.get_config("koch105")
    c.data.dir = str(omniglot_dir)
    c.data.alphabets = ("Alphabet_of_the_Magi", "Armenian")  # two alphabets: a short decode
    c.data.val_alphabets = ("Armenian",)
    c.data.batch_size = 4  # pairs
    c.optim.train_steps = 3
    c.optim.warmup_steps = 1
    c.log_every = 1
    c.eval.eval_every = 3
    c.checkpoint_every = 3
    c.eval.val_ways = 5
    c.eval.val_episodes = 2
    result = train_lib.train(c, tmp_path, progress=False)
    losses = [r["loss"] for r in read_metrics(tmp_path) if "loss" in r]
    assert len(losses) == 3 and np.all(np.isfinite(losses)), losses
    assert 0.0 <= result["val_accuracy"] <= 1.0
    ckpt = ckpt_lib.resolve_checkpoint(tmp_path)
    assert ckpt.is_dir() and ckpt.name == "3"
    model = siamjax.load(tmp_path)
    assert model.preprocessing.size == 105
    emb = model.embed(np.zeros((2, 105, 105, 1), np.uint8))
    assert emb.shape == (2, 4096) and np.all(np.isfinite(emb))
