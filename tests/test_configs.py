"""Every installed config (configs/, installed as siamjax.configs) and every named variant of one builds and
passes train.py's checks; its encoder gives the embedding its comments promise (shapes only; no data, no
training); and the variants the Makefile names for pretrained/omniglot's members give the configs those
members were trained with."""
import importlib
import json
import os
import pathlib
import re
import shutil
import subprocess

import jax
import jax.numpy as jnp
import pytest

import siamjax
import siamjax.train as train_lib
from siamjax.cli.config_flags import config_names
from siamjax.configs import omniglot
from siamjax.config_layout import DEFAULTS, flatten, upgrade_config
from siamjax.train.resume import RESUMABLE_KEYS

REPO = pathlib.Path(__file__).resolve().parents[1]


def _module(name):
    return importlib.import_module(f"siamjax.configs.{name}")


def _config(name, variant=None):
    get_config = _module(name).get_config
    return get_config() if variant is None else get_config(variant)


# (file, variant): None is the file's get_config(); a file with variants lists them in VARIANTS.
CONFIGS = [(name, variant) for name in config_names()
           for variant in (None, *getattr(_module(name), "VARIANTS", ()))]


def test_the_installed_configs_are_the_repository_configs():
    assert config_names() == sorted(p.stem for p in (REPO / "configs").glob("*.py")
                                    if p.stem not in ("__init__", "common"))
    assert ("omniglot", "moments64") in CONFIGS


@pytest.mark.parametrize("name, variant", CONFIGS)
def test_config_passes_checks(name, variant):
    cfg = _config(name, variant)
    if cfg.get("task", "twin") == "siamfc":  # train.py hands these to the tracker's trainer
        from siamjax.tracking import train as tracking_train
        tracking_train.check_config(cfg)
    else:
        train_lib.check_config(cfg)


def test_no_variant_is_the_demo_and_an_unknown_one_names_the_valid_ones():
    assert omniglot.get_config("").to_dict() == omniglot.get_config().to_dict() == omniglot.base().to_dict()
    assert omniglot.get_config().data.image_size == 28 and omniglot.get_config().loss.name == "triplet"
    with pytest.raises(ValueError, match="no variant 'moments'; choose one of oneshot, ") as error:
        omniglot.get_config("moments")
    assert all(name in str(error.value) for name in omniglot.VARIANTS)
    # each call builds a fresh config: changing one leaves the next (and the shared pieces) alone
    c = omniglot.get_config("crop_wide")
    c.model.kwargs.widths = (1,)
    assert omniglot.get_config("crop_wide").model.kwargs.widths == (96, 192, 384, 384)


@pytest.mark.parametrize("variant, overrides, size, dim", [
    (None, {}, 28, 64),  # the demo: conv-4 ends on a 1 x 1 map
    ("oneshot", {}, 32, 2 * 2 * 128),
    ("proxies_long", {}, 32, 2 * 2 * 256),
    ("crop", {}, 32, 2 * 2 * 256),
    ("crop_wide", {}, 32, 2 * 2 * 384),
    ("hires", {}, 64, 2 * 2 * 256),  # a fifth block keeps the 2 x 2 final map
    ("crop_hires", {}, 64, 2 * 2 * 256),
    ("moments64", {}, 64, 2 * 2 * 256),
    ("koch105", {}, 105, 4096),  # Koch et al.'s network at their 105 px
    # round 28's probe (experiments/omniglot/): + block -2's maximum trained into the embedding
    ("crop_hires", {"model.kwargs.pooled_block": -2, "model.kwargs.pooled_weight": 2.0}, 64, 2 * 2 * 256 + 256),
])
def test_omniglot_embedding_sizes(variant, overrides, size, dim):
    cfg = omniglot.apply(omniglot.get_config(variant), overrides)
    assert cfg.data.image_size == size
    twin = train_lib.twin_from_config(cfg)
    shapes = jax.eval_shape(lambda: twin.init(jax.random.PRNGKey(0), (size, size, 1)))
    emb = jax.eval_shape(twin.embed, shapes, jnp.zeros((3, size, size, 1)))
    assert emb.shape == (3, dim)


def test_only_the_crop_variants_crop_omniglot_to_the_ink():
    """crop (and the variants built on it) crops each character to its strokes (10% margin, aspect kept)
    before the resize; moments64 frames them by the ink's moments; the others resize the whole canvas."""
    spec = train_lib.preprocessing_from_config(omniglot.get_config("crop"))
    assert (spec.size, spec.crop_to_ink, spec.keep_aspect, spec.crop_margin, spec.crop_frame) == (
        32, True, True, 0.1, "box")
    spec = train_lib.preprocessing_from_config(omniglot.get_config("moments64"))
    assert (spec.size, spec.crop_to_ink, spec.keep_aspect, spec.crop_frame, spec.crop_radius) == (
        64, True, False, "moments", 2.0)
    for variant in (None, "oneshot", "proxies_long", "hires"):
        spec = train_lib.preprocessing_from_config(omniglot.get_config(variant))
        assert not spec.crop_to_ink and not spec.keep_aspect


def _makefile_members():
    """[(member name, variant, seed)] of the Makefile's OMNIGLOT_RECIPES (VARIANT:RUN:STEM:STEP:SEED-VARIABLE),
    in the order ``make pretrained-omniglot`` builds the ensemble."""
    text = (REPO / "Makefile").read_text()
    seeds = dict(re.findall(r"^(\w*SEEDS)\s*\?=[ \t]*(.*)$", text, re.M))
    block = re.search(r"^OMNIGLOT_RECIPES :=((?:.*\\\n)*.*)$", text, re.M).group(1)
    members = []
    for recipe in block.replace("\\\n", " ").split():
        variant, _run, stem, _step, seed_variable = recipe.split(":")
        members += [(f"{stem}{s}", variant, int(s)) for s in seeds[seed_variable].split()]
    return members


def test_the_makefile_lists_the_shipped_members_in_order():
    manifest = json.loads((REPO / "pretrained" / "omniglot" / "ensemble.json").read_text())
    assert [name for name, _, _ in _makefile_members()] == manifest["members"]
    # every variant is used, but those that build no member (configs/omniglot.py's NOT_MEMBERS)
    assert {variant for _, variant, _ in _makefile_members()} == set(omniglot.VARIANTS) - set(omniglot.NOT_MEMBERS)
    assert set(omniglot.NOT_MEMBERS) <= set(omniglot.VARIANTS)


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_n_names_the_members_in_the_ensemble_order():
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}  # under `make test`
    out = subprocess.run(["make", "-n", "-C", str(REPO), "pretrained-omniglot"], capture_output=True, text=True,
                         check=True, env=env).stdout
    manifest = json.loads((REPO / "pretrained" / "omniglot" / "ensemble.json").read_text())
    assert f"--names {','.join(manifest['members'])}" in out
    assert "--config configs/omniglot.py:moments64" in out


@pytest.fixture(scope="module")
def shipped_members():
    return siamjax.load(REPO / "pretrained" / "omniglot").members




@pytest.mark.parametrize("index, name, variant, seed", [(i, *m) for i, m in enumerate(_makefile_members())],
                         ids=[name for name, _, _ in _makefile_members()])
def test_the_makefile_variant_gives_the_shipped_members_config(shipped_members, index, name, variant, seed):
    member = shipped_members[index]
    assert member.path.name == name
    cfg = omniglot.get_config(variant)
    cfg.seed = seed
    new = flatten(json.loads(cfg.to_json()))
    # The members' stored configs are flat and lack the keys added after they were trained (seed2: the proxy
    # and crop keys; all but the moments-framed two: train_views, crop_frame / crop_radius; ...):
    # upgrade_config fills those with the values such runs ran with (siamjax.config_layout.DEFAULTS), so the
    # variant must give exactly those values. Model.config is that upgrade.
    assert "data_dir" in member.meta["config"] and "learning_rate" in member.meta["config"]  # written flat
    assert member.config.to_dict() == upgrade_config(member.meta["config"]).to_dict()
    stored = flatten(json.loads(member.config.to_json()))
    # data.dir and the bookkeeping keys a resumed run may change (siamjax.train.resume.RESUMABLE_KEYS) may
    # differ, except train_steps: it sets the warm-up and cosine decay, and every member ran its recipe's own.
    differs = {k for k in set(new) | set(stored) if k not in RESUMABLE_KEYS and new.get(k) != stored.get(k)}
    assert not differs, {k: (stored.get(k), new.get(k)) for k in sorted(differs)}
    assert new["optim.train_steps"] == stored["optim.train_steps"]
    assert train_lib.preprocessing_from_config(cfg) == member.preprocessing  # the stored preprocessing too


# The layout: one nested DEFAULTS (siamjax/config_layout.py); every installed config uses only its keys, and the
# stored config of every shipped checkpoint (flat, written before the groups existed) upgrades to a config that
# passes train.py's checks.
def _layout_keys(d, prefix=""):
    from siamjax.config_layout import FREE

    out = set()
    for key, value in d.items():
        path = prefix + key
        out.add(path)
        if isinstance(value, dict) and path not in FREE:
            out |= _layout_keys(value, path + ".")
    return out


@pytest.mark.parametrize("name, variant", [c for c in CONFIGS if c[0] != "siamfc"])
def test_every_key_of_every_installed_config_is_in_the_layout(name, variant):
    from siamjax.train.schema import SCHEMA

    cfg = _config(name, variant).to_dict()
    assert _layout_keys(cfg) == _layout_keys(DEFAULTS) == _layout_keys(SCHEMA)
    assert upgrade_config(cfg).to_dict() == cfg  # complete: nothing to fill


SHIPPED = sorted(str(p.parent.relative_to(REPO / "pretrained")) for p in (REPO / "pretrained").rglob("meta")
                 if p.is_dir() and not str(p).startswith(str(REPO / "pretrained" / "siamfc")))


@pytest.mark.parametrize("member", SHIPPED)
def test_every_shipped_checkpoints_stored_config_upgrades_and_passes_the_checks(member, tmp_path):
    from siamjax import checkpoint as ckpt_lib

    stored = ckpt_lib.read_meta(REPO / "pretrained" / member)["config"]
    cfg = upgrade_config(stored)
    if "data_dir" in stored:  # flat: written before the groups existed
        flat = flatten(json.loads(cfg.to_json()), free=False)
        assert flat["data.source"] == stored["data"] and flat["model.name"] == stored["model"]
        assert flat["loss.name"] == stored["loss"] and flat["optim.learning_rate"] == stored["learning_rate"]
    else:  # nested and complete
        assert cfg.to_dict() == stored
    if cfg.loss.distill_weight > 0:  # its targets file was made before its run, not in a clone
        cfg.loss.distill_targets = str(tmp_path / "targets.npz")
        (tmp_path / "targets.npz").write_bytes(b"")
    train_lib.check_config(cfg)
    assert upgrade_config(cfg).to_dict() == cfg.to_dict()  # a nested config upgrades to itself


def test_old_flat_overrides_name_the_new_key():
    from siamjax.cli.config_flags import renamed_override_message, unknown_override_message
    from siamjax.config_layout import FLAT_NAMES, new_name

    cfg = omniglot.get_config()
    assert new_name("learning_rate") == "optim.learning_rate" and new_name("data") == "data.source"
    assert new_name("projection.dim") == "model.projection.dim" and new_name("optim.learning_rate") is None
    for old, new in FLAT_NAMES.items():
        msg = renamed_override_message(["train.py", f"--config.{old}=1"], cfg)
        assert msg.startswith(f"--config.{old} is --config.{new} now"), msg
    assert renamed_override_message(["train.py", "--config.optim.learning_rate=1"], cfg) is None
    assert unknown_override_message(["train.py", "--config.optim.learing_rate=1"], cfg, KeyError()) == (
        "unknown config key --config.optim.learing_rate (did you mean 'optim.learning_rate'?)")
