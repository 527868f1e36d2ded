"""An earlier block's pooled features beside the embedding (siamjax/block_pooling.py): siamjax.load appends
[unit(last, whitened), sqrt(w) * unit(pooled block)] where a step folder has block_pooling.json, the
pooled part equals a shorter encoder's output with the same weights, the cosine becomes (cos(last) +
w * cos(pooled)) / (1 + w), ensembles split and score the wider embeddings, and bad files, blocks or
encoders are refused with the file named."""
import json

import numpy as np
import pytest

import siamjax
from siamjax.cli import block_pooling as block_pooling_cli
from siamjax.infer import block_pooling
from siamjax.cli import ensemble as ensemble_cli
from siamjax.infer import build_ensemble, ensemble
from siamjax.infer import whitening
from siamjax.data.preprocess import to_float
from tests.test_gallery import write_checkpoint


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (12, 28, 28), dtype=np.uint8)


def pooled_by_a_shorter_encoder(model, images, blocks, pool):
    """The first ``blocks`` blocks of the model's conv4 (width 8) as their own encoder, with the model's
    weights for them: its flattened output [N, h * w * 8], reshaped and pooled over positions -> [N, 8]."""
    short = siamjax.make_twin("conv4", "cosine", {"width": 8, "blocks": blocks})
    keep = {f"{kind}_{i}" for kind in ("Conv", "BatchNorm") for i in range(blocks)}
    variables = {col: {"encoder": {k: v for k, v in tree["encoder"].items() if k in keep}}
                 for col, tree in model.variables.items()}
    x = to_float(model.preprocess(images), model.preprocessing)
    out = np.asarray(short.embed(variables, x))
    side = 28 >> blocks  # 28 px halved per block (VALID 2 x 2 pools)
    maps = out.reshape(len(out), side, side, 8)
    return maps.max(axis=(1, 2)) if pool == "max" else maps.mean(axis=(1, 2))


@pytest.mark.parametrize("block,pool,weight", [(-2, "max", 2.0), (1, "mean", 0.5)])
def test_load_appends_the_pooled_block_after_whitening(tmp_path, images, block, pool, weight):
    ckpt = write_checkpoint(tmp_path / "m")
    plain = siamjax.load(ckpt)
    w = whitening.fit(plain.embed(images), np.repeat(np.arange(4), 3), 1.0, rank=4)
    w.save(plain.path / whitening.FILENAME)
    w = whitening.read(plain.path / whitening.FILENAME)  # as loaded: its basis stored as float16
    block_pooling.BlockPooling(block, pool, weight).save(plain.path / block_pooling.FILENAME)
    model = siamjax.load(ckpt)
    e = model.embed(images)
    assert e.shape == (12, 16) and model.embed_dim == 16 and plain.embed_dim == 8
    pooled = pooled_by_a_shorter_encoder(model, images, range(4)[block] + 1, pool)
    want = np.concatenate([unit(w.apply(plain.embed(images))), np.sqrt(weight) * unit(pooled)], axis=1)
    np.testing.assert_allclose(e, want, rtol=1e-5, atol=1e-6)
    # the cosine of the wider embeddings weighs the two parts' cosines 1 : weight
    cos_last = unit(w.apply(plain.embed(images[:5]))) @ unit(w.apply(plain.embed(images[5:]))).T
    cos_pool = unit(pooled[:5]) @ unit(pooled[5:]).T
    np.testing.assert_allclose(model.pairwise(e[:5], e[5:]), (cos_last + weight * cos_pool) / (1 + weight),
                               rtol=1e-4, atol=1e-5)
    # off on request, and for an untrained baseline
    np.testing.assert_allclose(siamjax.load(ckpt, block_pooling=False).embed(images), w.apply(plain.embed(images)),
                               rtol=1e-5, atol=1e-6)
    assert model.reinitialised().block_pooling is None


def test_test_time_shifts_average_each_part_over_the_views(tmp_path, images):
    ckpt = write_checkpoint(tmp_path / "m")
    block_pooling.BlockPooling().save(siamjax.load(ckpt).path / block_pooling.FILENAME)
    shifted = siamjax.load(ckpt, tta_shift=2)
    model = siamjax.load(ckpt)
    # every view of these images, through the model without shifts, split into its two parts
    parts = [model.embed_preprocessed(shifted_view) for shifted_view in
             [model.preprocess(images)] + [siamjax.infer.model.shift_image(model.preprocess(images), dy, dx)
                                           for dy, dx in siamjax.infer.shift.moves(2)]]
    last = np.mean([unit(p[:, :8]) for p in parts], axis=0)
    pooled = np.mean([unit(p[:, 8:]) for p in parts], axis=0)
    np.testing.assert_allclose(shifted.embed(images), np.concatenate([unit(last), np.sqrt(2) * unit(pooled)], 1),
                               rtol=1e-5, atol=1e-6)


def test_ensembles_split_and_score_the_wider_member_embeddings(tmp_path, images):
    a, b = write_checkpoint(tmp_path / "a"), write_checkpoint(tmp_path / "b", seed=1)
    block_pooling.BlockPooling(weight=1.0).save(siamjax.load(a).path / block_pooling.FILENAME)
    ens = siamjax.load(build_ensemble.write_ensemble(tmp_path / "ens", [a, b]))
    e = ens.embed(images)
    assert e.shape == (12, 16 + 8) and [m.embed_dim for m in ens.members] == [16, 8]
    sims = [m.pairwise(x, y) for m, x, y in zip(ens.members, ens.member_blocks(e[:4]), ens.member_blocks(e[4:]))]
    np.testing.assert_allclose(ens.pairwise(e[:4], e[4:]), (sims[0] + sims[1]) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ens.score(images[:4], images[4:8]), np.diag(ens.pairwise(e[:4], e[4:8])),
                               rtol=1e-5, atol=1e-6)


def test_the_cli_writes_every_member_and_removes(tmp_path, capsys):
    a, b = write_checkpoint(tmp_path / "a"), write_checkpoint(tmp_path / "b", seed=1)
    ens = build_ensemble.write_ensemble(tmp_path / "ens", [a, b])
    assert block_pooling_cli.main([str(ens), "--pool", "mean", "--weight", "1.5"]) == 0
    files = sorted(ens.rglob(block_pooling.FILENAME))
    assert len(files) == 2 and json.loads(files[0].read_text()) == {"block": -2, "pool": "mean", "weight": 1.5}
    assert all(m.block_pooling == block_pooling.BlockPooling(-2, "mean", 1.5) for m in siamjax.load(ens).members)
    assert block_pooling_cli.main([str(ens), "--remove"]) == 0
    assert not list(ens.rglob(block_pooling.FILENAME))
    # a block the encoder does not have: refused before any file is written
    assert block_pooling_cli.main([str(ens), "--block", "3"]) == 2
    assert "not an earlier block of this 4-block encoder" in capsys.readouterr().err
    assert not list(ens.rglob(block_pooling.FILENAME))


def test_bad_settings_and_files_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="other than -1"):
        block_pooling.BlockPooling(block=-1)
    with pytest.raises(ValueError, match="pool must be one of"):
        block_pooling.BlockPooling(pool="median")
    with pytest.raises(ValueError, match="weight must be a number > 0"):
        block_pooling.BlockPooling(weight=0)
    ckpt = write_checkpoint(tmp_path / "m")
    step = siamjax.load(ckpt).path
    for text, match in [("{not json", "not a readable block pooling file"),
                        ('{"block": -2, "stride": 2}', "expected"),
                        ('{"block": -2, "pool": "max", "weight": -1}', "weight must be a number > 0"),
                        ('{"block": 5}', "not an earlier block of this 4-block encoder")]:
        (step / block_pooling.FILENAME).write_text(text)
        with pytest.raises(ValueError, match=match) as err:
            siamjax.load(ckpt)
        assert str(step) in str(err.value)
    (step / block_pooling.FILENAME).unlink()
    # an encoder without conv blocks in order, or a head other than cosine: refused with the reason
    with pytest.raises(ValueError, match="needs a conv4 encoder"):
        block_pooling.BlockPooling().check_model("koch", "cosine", 0)
    with pytest.raises(ValueError, match="needs a cosine head"):
        block_pooling.BlockPooling().check_model("conv4", "euclidean", 4)


def test_a_pooled_block_trained_in_loads_as_the_test_time_one_and_refuses_a_second(tmp_path, images, capsys):
    """A checkpoint of a conv4 with ``model_kwargs.pooled_block`` (the same weights: it adds none) embeds
    exactly as the plain network with block_pooling.json; a second, test-time pooled block is refused."""
    plain = write_checkpoint(tmp_path / "plain")
    block_pooling.BlockPooling(-2, "max", 2.0).save(siamjax.load(plain).path / block_pooling.FILENAME)
    trained_in = write_checkpoint(tmp_path / "trained_in", model_kwargs={"pooled_block": -2, "pooled_weight": 2.0})
    model = siamjax.load(trained_in, whitening=False)
    assert model.embed_dim == 16
    np.testing.assert_allclose(model.embed(images), siamjax.load(plain, whitening=False).embed(images),
                               rtol=1e-5, atol=1e-6)
    assert block_pooling_cli.main([str(trained_in)]) == 2
    assert "already holds a pooled block" in capsys.readouterr().err
    assert not list(trained_in.rglob(block_pooling.FILENAME))
    block_pooling.BlockPooling().save(model.path / block_pooling.FILENAME)  # written by hand: refused on load
    with pytest.raises(ValueError, match="pooled_block=-2: its embedding already holds a pooled block"):
        siamjax.load(trained_in)


SKIPPED_MEMBERS = {  # a member the CLI gives no test-time pooled block in an ensemble: its checkpoint kwargs, reason
    "trained_in": ({"model_kwargs": {"pooled_block": -2}}, "its embedding holds one already"),
    "resnet": ({"encoder": "resnet", "model_kwargs": {"stage_widths": (8, 16), "stem_width": 8, "embed_dim": 0}},
               "a resnet encoder with a cosine head"),
}


@pytest.mark.parametrize("kind", sorted(SKIPPED_MEMBERS))
def test_the_cli_skips_ensemble_members_it_does_not_serve(tmp_path, capsys, kind):
    """In an ensemble, a member trained with pooled_block (it holds one) or of another encoder gets no
    test-time pooled block, with the reason, while the conv4 members do; an ensemble of only such
    members is refused and no file written."""
    kwargs, reason = SKIPPED_MEMBERS[kind]
    a = write_checkpoint(tmp_path / "a")
    b = write_checkpoint(tmp_path / "b", seed=1, **kwargs)
    ens = build_ensemble.write_ensemble(tmp_path / "ens", [a, b])
    assert block_pooling_cli.main([str(ens)]) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and reason in out
    members = siamjax.load(ens).members
    assert members[0].block_pooling is not None and members[1].block_pooling is None
    only = build_ensemble.write_ensemble(tmp_path / "only", [b, write_checkpoint(tmp_path / "c", seed=2, **kwargs)])
    assert block_pooling_cli.main([str(only)]) == 2
    assert "no member of" in capsys.readouterr().err
    assert [p.parent for p in tmp_path.rglob(block_pooling.FILENAME)] == [members[0].path]  # the conv4 member's only
    if kind == "trained_in":
        assert [m.embed_dim for m in members] == [16, 16]
    else:  # alone, refused with the reason
        assert block_pooling_cli.main([str(b)]) == 2
        assert "needs a conv4 encoder, this model is 'resnet'" in capsys.readouterr().err
