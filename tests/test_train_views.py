"""config.augment.train_views: handwriting distortions (siamjax.data.views) after the affine ones, for supervised losses.

The default (every component off), an absent key and all-off settings change nothing, and a run
saved before the key existed resumes; bad keys fail before any work with the key named; the
unsupervised losses refuse it (their views are config.augment.views); on, it changes the training step's loss.
"""
import json

import jax
import ml_collections
import numpy as np
import pytest

from siamjax.configs import omniglot
import siamjax.train as train_lib
from tests.test_mixed_precision import _batch, _config, _state


def test_default_absent_or_all_off_is_none():
    cfg = _config("triplet", "float32")
    assert train_lib.train_views_from_config(cfg) is None  # siamjax/config_layout.py's default: all off
    stored = cfg.to_dict()
    del stored["augment"]["train_views"]  # a config without the key gets the default
    assert train_lib.train_views_from_config(train_lib.upgrade_config(stored)) is None
    cfg.augment.train_views = ml_collections.ConfigDict()  # empty: nothing on
    assert train_lib.train_views_from_config(cfg) is None
    cfg.augment.train_views = ml_collections.ConfigDict(dict(stroke_prob=0.0))
    assert train_lib.train_views_from_config(cfg) is None
    cfg.augment.train_views = ml_collections.ConfigDict(dict(elastic_prob=1.0, elastic_alpha=2.0))
    v = train_lib.train_views_from_config(cfg)
    assert v.elastic_on and v.crop_is_identity and v.affine_is_identity and v.noise_std == 0 and v.stroke_prob == 0


def test_a_run_saved_before_the_key_existed_resumes():
    old = json.loads(_config("triplet", "float32").to_json())
    del old["augment"]["train_views"]
    train_lib.check_resume_compatible({"config": old}, _config("triplet", "float32"))
    on = _config("triplet", "float32")
    on.augment.train_views.stroke_prob = 0.5
    with pytest.raises(ValueError, match="train_views"):
        train_lib.check_resume_compatible({"config": old}, on)


def test_the_round_27_config_checks():
    # round 27's probe (experiments/omniglot/): the crop_hires recipe with elastic and stroke distortions
    cfg = omniglot.get_config("crop_hires")
    cfg.augment.train_views = ml_collections.ConfigDict(dict(elastic_prob=0.5, elastic_alpha=3.0, elastic_sigma=6.0,
                                                     stroke_prob=0.3))
    train_lib.check_config(cfg)
    v = train_lib.train_views_from_config(cfg)
    assert (v.elastic_prob, v.elastic_alpha, v.elastic_sigma, v.stroke_prob) == (0.5, 3.0, 6.0, 0.3)


def test_bad_settings_fail_with_the_key_named():
    cfg = _config("triplet", "float32")
    cfg.augment.train_views = ml_collections.ConfigDict(dict(elastic_alfa=2.0))
    with pytest.raises(ValueError, match="elastic_alfa"):
        train_lib.check_config(cfg)
    cfg.augment.train_views = ml_collections.ConfigDict(dict(stroke_prob=1.5))
    with pytest.raises(ValueError, match="stroke_prob"):
        train_lib.check_config(cfg)
    cfg = _config("triplet", "float32")
    cfg.loss.name, cfg.model.head = "simclr", "cosine"
    cfg.augment.train_views = ml_collections.ConfigDict(dict(stroke_prob=0.5))
    with pytest.raises(ValueError, match="config.augment.views"):
        train_lib.check_config(cfg)


def test_views_change_the_step_and_all_off_does_not():
    losses = {}
    for name, views in (("none", None), ("off", dict(stroke_prob=0.0)), ("on", dict(stroke_prob=1.0))):
        cfg = _config("triplet", "float32")
        if views is None:
            cfg.augment.train_views = ml_collections.ConfigDict()
        else:
            cfg.augment.train_views = ml_collections.ConfigDict(views)
        spec = train_lib.preprocessing_from_config(cfg)
        twin = train_lib.twin_from_config(cfg)
        step = jax.jit(train_lib.make_train_step(twin, cfg, spec))
        _, metrics = step(_state(twin, cfg, spec), _batch("triplet"))
        losses[name] = float(metrics["loss"])
    assert np.isfinite(losses["on"])
    assert losses["off"] == losses["none"]
    assert abs(losses["on"] - losses["none"]) > 1e-4


@pytest.mark.parametrize("key,value,match", [("collapse_ratio", 1.5, "collapse_ratio"),
                                             ("ssl_temperature", 0.0, "ssl_temperature")])
def test_the_unsupervised_checks_still_run(key, value, match):
    """The train_views branch of check_config leaves the unsupervised settings' own checks in place."""
    cfg = _config("triplet", "float32")
    cfg.loss.name, cfg.model.head = "simclr", "cosine"
    cfg.loss[key] = value
    with pytest.raises(ValueError, match=match):
        train_lib.check_config(cfg)
