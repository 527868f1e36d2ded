"""Paths and PIL images given to Model / Ensemble / Gallery are decoded as the data loaders decode files
(siamjax.data.image_input.to_arrays); an array is taken as pixel values (the np.asarray trap)."""
import zipfile

import numpy as np
import pytest
from PIL import Image

import siamjax
from siamjax.data import decode, load_image_folder
from siamjax.data.image_input import to_arrays
from siamjax.infer.ensemble import Ensemble
from tests.test_gallery import write_checkpoint

H, W = 40, 32  # not square: an EXIF rotation would change the shape


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return siamjax.load(write_checkpoint(tmp_path_factory.mktemp("ckpt")))


def _pattern(seed=0) -> np.ndarray:
    """uint8 [H, W]: blobs on a light background, asymmetric."""
    rng = np.random.default_rng(seed)
    g = np.full((H, W), 230, np.uint8)
    g[rng.random((H, W)) > 0.7] = 30
    g[:8, :5] = 0
    return g


def _palette(path):
    g = _pattern()
    idx = (g < 128).astype(np.uint8)  # 0 = paper, 1 = ink
    im = Image.fromarray(idx, "P")
    im.putpalette([255, 250, 240, 20, 40, 200] + [0] * (254 * 3))  # index 0 light, 1 dark blue
    im.save(path)


def _cmyk(path):
    g = _pattern().astype(np.float64)
    k = (255 - g).astype(np.uint8)
    c = np.zeros_like(k)
    c[:, W // 2:] = 90
    Image.fromarray(np.stack([c, k // 2, k // 3, k], -1), "CMYK").save(path, quality=95)


def _gray16(path):
    Image.fromarray(_pattern().astype(np.uint16) * 257 + 100).save(path)


def _rgba(path):
    g = _pattern()
    a = np.full_like(g, 255)
    a[:, : W // 3] = 60
    Image.fromarray(np.stack([g, g // 2, 255 - g, a], -1), "RGBA").save(path)


def _exif_jpeg(path):
    g = _pattern()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(np.stack([g, g, g // 2], -1), "RGB").save(path, exif=exif, quality=95)


KINDS = {"palette.png": _palette, "cmyk.jpg": _cmyk, "gray16.png": _gray16, "rgba.png": _rgba,
         "exif.jpg": _exif_jpeg}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    out = {}
    for name, make in KINDS.items():
        p = root / name
        make(p)
        out[name] = p
    return out


def test_written_modes(files):
    modes = {n: Image.open(p).mode for n, p in files.items()}
    assert modes["palette.png"] == "P" and modes["cmyk.jpg"] == "CMYK" and modes["rgba.png"] == "RGBA"
    assert modes["gray16.png"] in ("I", "I;16")
    assert Image.open(files["exif.jpg"]).getexif().get(0x0112) == 6


@pytest.mark.parametrize("name", list(KINDS))
def test_path_pil_and_loader_agree(model, files, tmp_path, name):
    path = files[name]
    loader = decode.decode_image(path.read_bytes(), str(path))  # how the data loaders decode the file
    want = model.preprocess([loader])
    for form in (path, str(path), Image.open(path)):
        np.testing.assert_array_equal(model.preprocess([form]), want)
    e_loader = model.embed([loader])
    np.testing.assert_array_equal(model.embed([path]), e_loader)
    np.testing.assert_array_equal(model.embed([Image.open(path)]), e_loader)
    # the image-folder loader: the same preprocessed pixels, so the same embedding
    for cls, img in (("cls", path), ("other", files["rgba.png" if name != "rgba.png" else "palette.png"])):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / img.name).write_bytes(img.read_bytes())
    data = load_image_folder(tmp_path, model.preprocessing, lazy=False, min_images_per_class=1)
    row = np.asarray(data.images[np.flatnonzero(data.labels == data.class_names.index("cls"))])
    np.testing.assert_array_equal(row, want)
    np.testing.assert_array_equal(model.embed_preprocessed(row), e_loader)


def test_asarray_of_a_palette_image_is_the_trap(model, files):
    path = files["palette.png"]
    raw = np.asarray(Image.open(path))  # palette indices 0 / 1, read as (almost black) grey
    assert raw.ndim == 2 and raw.max() == 1
    assert not np.array_equal(model.preprocess([raw]), model.preprocess([path]))
    assert not np.allclose(model.embed([raw]), model.embed([path]), atol=1e-3)


def test_asarray_of_a_cmyk_image_is_read_as_rgba(model, files):
    path = files["cmyk.jpg"]
    raw = np.asarray(Image.open(path))
    assert raw.shape[-1] == 4
    assert not np.array_equal(model.preprocess([raw]), model.preprocess([path]))


def test_mixed_list_score_and_zip_member(model, files, tmp_path):
    pal = files["palette.png"]
    z = tmp_path / "imgs.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(pal, "inner/palette.png")
    arr = decode.decode_image(pal.read_bytes(), "palette")
    e = model.embed([pal, Image.open(pal), f"{z}/inner/palette.png", arr, np.asarray(Image.open(files["rgba.png"]))])
    assert e.shape[0] == 5
    np.testing.assert_allclose(e[1:4], np.repeat(e[:1], 3, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(e[4], model.embed([files["rgba.png"]])[0], rtol=1e-5, atol=1e-6)
    s = model.score([pal, files["rgba.png"]], [Image.open(pal), str(files["rgba.png"])])
    np.testing.assert_allclose(s, 1.0, atol=1e-5)  # cosine head: each image against itself
    assert model.embed(pal).shape == (1, e.shape[1])  # a lone path counts as a list of one


def test_bad_paths_name_the_file(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        model.embed([tmp_path / "missing.png"])
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="notes.png"):
        model.embed([bad])


def test_arrays_pass_through():
    x = np.zeros((2, 5, 5), np.uint8)
    assert to_arrays(x) is x
    a, b = x[0], x[1]
    out = to_arrays((a, b))
    assert isinstance(out, list) and out[0] is a and out[1] is b


def test_ensemble_and_gallery_take_paths_and_pil(model, files, tmp_path):
    ens = Ensemble([model, siamjax.load(write_checkpoint(tmp_path / "m2", seed=1))])
    pal, rgba = files["palette.png"], files["rgba.png"]
    arr = decode.decode_image(pal.read_bytes(), "palette")
    want = ens.embed([arr])
    np.testing.assert_allclose(ens.embed([pal]), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ens.embed([Image.open(pal)]), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ens.preprocess([str(pal)]), ens.preprocess([arr]))
    assert ens.score([pal], [Image.open(pal)]).shape == (1,)

    g = siamjax.Gallery(model)
    g.enrol("pal", images=[pal, Image.open(pal)])
    g.enrol("rgba", images=rgba)
    assert g.embeddings("pal").shape[0] == 2 and g.embeddings("rgba").shape[0] == 1
    for probe in (pal, str(pal), Image.open(pal), arr):
        assert g.identify(probe, k=1)[0][0] == "pal"
        assert g.score(probe, ["pal"])[0] == pytest.approx(1.0, abs=1e-5)
    assert g.identify(Image.open(rgba), k=1)[0][0] == "rgba"


def test_exif_orientation_turns_the_photo_upright(files):
    """Orientation 6 (stored sideways, shown turned 90 degrees clockwise): decoded [W, H], as shown."""
    stored = np.asarray(Image.open(files["exif.jpg"]))
    decoded = decode.decode_image(files["exif.jpg"].read_bytes(), "exif.jpg")
    assert stored.shape[:2] == (H, W) and decoded.shape[:2] == (W, H)
    np.testing.assert_array_equal(decoded, np.rot90(stored, k=-1))
