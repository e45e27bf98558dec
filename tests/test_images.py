"""Images for predict: read faithfully (16-bit scaled, transparency composited, floats in
[0, 1]) or refused with a message, never guessed."""

from __future__ import annotations

import numpy as np
import pytest

from flexnet.data import DataFileError, read_images

Image = pytest.importorskip("PIL.Image")

SHAPE = (8, 8)


def digit() -> np.ndarray:
    """A bright bar on black: the 8x8 'ink' every test draws, values 0 or 1."""
    ink = np.zeros(SHAPE, dtype=np.float32)
    ink[1:7, 3:5] = 1
    return ink


def test_8_bit_grey_and_rgb_read_as_before(tmp_path):
    Image.fromarray((digit() * 255).astype(np.uint8)).save(tmp_path / "l.png")
    Image.fromarray(np.repeat((digit() * 255).astype(np.uint8)[..., None], 3, axis=2)).save(tmp_path / "rgb.png")
    out = read_images([tmp_path / "l.png", tmp_path / "rgb.png"], SHAPE)
    assert out.dtype == np.float32 and out.shape == (2, 8, 8)
    assert np.array_equal(out[0], digit() * 255) and np.array_equal(out[1], out[0])
    assert np.array_equal(read_images([tmp_path / "l.png"], SHAPE, pixel_max=16)[0], digit() * 16)


@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_16_bit_images_are_scaled_not_clipped(tmp_path, suffix):
    values = np.array([0, 257, 32768, 65535], dtype=np.uint16)
    img = np.tile(np.repeat(values, 2), (8, 1))  # 8x8, columns 0,0,257,257,...
    Image.fromarray(img).save(tmp_path / f"g16.{suffix}")
    out = read_images([tmp_path / f"g16.{suffix}"], SHAPE)[0]
    np.testing.assert_allclose(out[0], np.repeat(values / 65535 * 255, 2), rtol=1e-6)
    assert 0 < out.mean() < 255  # clipping at 255 would make every non-zero pixel white


def test_32_bit_integer_images_in_the_16_bit_range_are_read_outside_it_refused(tmp_path):
    Image.fromarray((digit() * 65535).astype(np.int32)).save(tmp_path / "i.tif")
    np.testing.assert_allclose(read_images([tmp_path / "i.tif"], SHAPE)[0], digit() * 255, rtol=1e-6)
    Image.fromarray(np.full(SHAPE, 70000, np.int32)).save(tmp_path / "big.tif")
    Image.fromarray(np.full(SHAPE, -5, np.int32)).save(tmp_path / "neg.tif")
    for name, words in [("big", "integer pixels from 70000 to 70000, outside the 16-bit range"),
                        ("neg", "integer pixels from -5 to -5")]:
        with pytest.raises(DataFileError, match=words):
            read_images([tmp_path / f"{name}.tif"], SHAPE)


def test_float_images_in_0_1_are_read_as_such_others_refused(tmp_path):
    Image.fromarray(digit() * 0.5).save(tmp_path / "f.tif")
    np.testing.assert_allclose(read_images([tmp_path / "f.tif"], SHAPE)[0], digit() * 127.5, rtol=1e-6)
    for name, values, words in [("over", digit() * 2, "float pixels from 0.0 to 2.0; expected values in"),
                                ("under", digit() - 1, "float pixels from -1.0 to 0.0"),
                                ("nan", np.where(digit() > 0, np.nan, 0).astype(np.float32), "float pixels")]:
        Image.fromarray(values.astype(np.float32)).save(tmp_path / f"{name}.tif")
        with pytest.raises(DataFileError, match=words):
            read_images([tmp_path / f"{name}.tif"], SHAPE)


def test_a_drawing_in_the_alpha_channel_is_composited_so_it_shows(tmp_path):
    """Black RGBA with the digit only in alpha: read as a black digit on white (before, all black)."""
    rgba = np.zeros(SHAPE + (4,), dtype=np.uint8)
    rgba[..., 3] = (digit() * 255).astype(np.uint8)
    Image.fromarray(rgba).save(tmp_path / "black_ink.png")
    out = read_images([tmp_path / "black_ink.png"], SHAPE)[0]
    assert np.array_equal(out, 255 - digit() * 255)
    assert np.array_equal(read_images([tmp_path / "black_ink.png"], SHAPE, invert=True)[0], digit() * 255)
    # White ink on transparency goes onto black: the MNIST look.
    rgba[..., :3] = 255
    Image.fromarray(rgba).save(tmp_path / "white_ink.png")
    assert np.array_equal(read_images([tmp_path / "white_ink.png"], SHAPE)[0], digit() * 255)
    # Grey with alpha (LA), half-transparent ink: composited in proportion.
    la = np.zeros(SHAPE + (2,), dtype=np.uint8)
    la[..., 1] = (digit() * 128).astype(np.uint8)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_allclose(read_images([tmp_path / "la.png"], SHAPE)[0], 255 - digit() * 128, atol=1e-3)


def test_opaque_alpha_and_palette_transparency(tmp_path):
    rgba = np.zeros(SHAPE + (4,), dtype=np.uint8)
    rgba[..., :3] = (digit() * 255).astype(np.uint8)[..., None]
    rgba[..., 3] = 255  # opaque: the alpha says nothing
    Image.fromarray(rgba).save(tmp_path / "opaque.png")
    assert np.array_equal(read_images([tmp_path / "opaque.png"], SHAPE)[0], digit() * 255)
    # A palette image whose colour 0 is transparent, the digit drawn in black (colour 1).
    p = Image.fromarray((digit()).astype(np.uint8), mode="P")
    p.putpalette([0, 0, 0, 0, 0, 0] + [0] * 762)
    p.info["transparency"] = 0
    p.save(tmp_path / "palette.png", transparency=0)
    assert np.array_equal(read_images([tmp_path / "palette.png"], SHAPE)[0], 255 - digit() * 255)
    with pytest.raises(DataFileError, match="fully transparent: nothing is drawn"):
        Image.fromarray(np.zeros(SHAPE + (4,), np.uint8)).save(tmp_path / "empty.png")
        read_images([tmp_path / "empty.png"], SHAPE)


def test_images_that_cannot_be_read_faithfully_are_refused(tmp_path):
    Image.new("CMYK", SHAPE).save(tmp_path / "cmyk.jpg")
    frames = [Image.new("L", SHAPE, v) for v in (0, 255)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:])
    (tmp_path / "text.png").write_text("not an image")
    whole = _png_bytes(tmp_path)
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    for name, words in [("cmyk.jpg", "CMYK images are not read"), ("anim.gif", "holds 2 frames"),
                        ("pages.tif", "holds 2 frames"), ("text.png", "not an image file"),
                        ("cut.png", "damaged or unreadable image")]:
        with pytest.raises(DataFileError) as err:
            read_images([tmp_path / name], SHAPE)
        assert name in str(err.value) and words in str(err.value), str(err.value)


def _png_bytes(tmp_path) -> bytes:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(tmp_path / "noise.png")
    return (tmp_path / "noise.png").read_bytes()


def test_an_image_too_large_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    from flexnet.data import readers

    monkeypatch.setattr(readers, "MAX_IMAGE_PIXELS", 100)
    Image.new("L", (20, 20)).save(tmp_path / "big.png")
    with pytest.raises(DataFileError, match="20x20 pixels is more than read_images reads"):
        read_images([tmp_path / "big.png"], SHAPE)


def test_predict_reads_a_transparent_drawing_and_refuses_cmyk_in_one_line(tmp_path, capsys):
    import flexnet
    from flexnet.cli import main

    net = flexnet.Network([64, 2], seed=0)
    net.metadata = {"input_shape": [8, 8], "pixel_max": 255.0}
    flexnet.save(net, tmp_path / "m.npz")
    rgba = np.zeros(SHAPE + (4,), dtype=np.uint8)
    rgba[..., 3] = (digit() * 255).astype(np.uint8)
    Image.fromarray(rgba).save(tmp_path / "ink.png")
    assert main(["predict", str(tmp_path / "m.npz"), str(tmp_path / "ink.png"), "--invert"]) == 0
    assert "ink.png" in capsys.readouterr().out
    Image.new("CMYK", SHAPE).save(tmp_path / "cmyk.jpg")
    assert main(["predict", str(tmp_path / "m.npz"), str(tmp_path / "cmyk.jpg")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cmyk.jpg: CMYK images are not read" in err
