import numpy as np
import pytest

from recolor import color


def test_to_float_rgb_accepts_every_layout():
    gray = np.full((4, 5), 128, np.uint8)
    rgb, alpha = color.to_float_rgb(gray)
    assert rgb.shape == (4, 5, 3) and alpha is None and np.allclose(rgb, 128 / 255)
    rgba16 = np.full((4, 5, 4), 65535, np.uint16)
    rgb, alpha = color.to_float_rgb(rgba16)
    assert rgb.shape == (4, 5, 3) and np.allclose(alpha, 1.0) and np.allclose(rgb, 1.0)
    rgb, _ = color.to_float_rgb(np.full((2, 2, 1), 0.5, np.float64))
    assert rgb.dtype == np.float32 and np.allclose(rgb, 0.5)


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 2), np.uint8), np.zeros((4,), np.uint8), np.zeros((4, 4), np.int64)])
def test_to_float_rgb_rejects_bad_arrays(bad):
    with pytest.raises(ValueError):
        color.to_float_rgb(bad)


@pytest.mark.parametrize("h, w", [(1080, 1920), (3000, 4000), (512, 512), (300, 4000), (5, 7)])
@pytest.mark.parametrize("rf", [7, 21, 35, 64])
def test_render_size_keeps_aspect_and_area(h, w, rf):
    rh, rw = color.render_size(h, w, rf)
    assert rh % 32 == 0 and rw % 32 == 0 and rh >= 32 and rw >= 32
    # area (rf·16)², aspect kept, each side rounded to the nearest 32; never above the photo's own area
    scale = min(rf * 16, max(np.sqrt(h * w), color.MIN_RENDER)) / np.sqrt(h * w)
    assert abs(rh - max(32, h * scale)) <= 16 and abs(rw - max(32, w * scale)) <= 16


def test_small_photos_render_at_their_own_size_not_upsampled():
    assert color.render_size(200, 200, 35) == (192, 192)  # rf 35 alone would draw it at 560×560
    assert color.render_size(240, 320, 7) == (96, 128)  # below the photo's size the factor still rules
    assert color.render_size(20, 30, 35) == (96, 160)  # thumbnails go up to MIN_RENDER² area


@pytest.mark.parametrize("rf", [0, 6, 65, 200])
def test_render_factor_out_of_range_is_a_clear_error(rf):
    with pytest.raises(ValueError, match="7–64"):
        color.render_size(100, 100, rf)


def test_merge_keeps_luminance_even_for_out_of_gamut_chroma(photo):
    rgb, _ = color.to_float_rgb(photo)
    l_full = color.rgb_to_lab(rgb)[:, :, 0]
    rng = np.random.default_rng(0)
    ab = rng.uniform(-120, 120, (40, 60, 2)).astype(np.float32)  # wildly saturated, low-res chroma
    out = color.merge_l_ab(l_full, ab)
    assert out.shape == photo.shape and out.dtype == np.uint8
    l_out = color.rgb_to_lab(out.astype(np.float32) / 255)[:, :, 0]
    assert np.abs(l_out - l_full).max() < 1.0  # 8-bit rounding only
    assert color.ab_of(out.astype(np.float32) / 255).std() > 5  # and it is in colour


def test_out_of_gamut_colours_keep_luminance_and_hue_direction():
    lab = np.array([[50.0, 10.0, 10.0], [95.0, 80.0, -80.0], [8.0, -60.0, 70.0]], np.float32)
    rgb = color.desaturate_into_gamut(lab)
    assert rgb.min() >= 0 and rgb.max() <= 1
    back = color.rgb_to_lab(rgb[None])[0]
    assert np.abs(back[:, 0] - lab[:, 0]).max() < 0.2  # cv2's float RGB->Lab itself is off by ~0.13
    assert np.allclose(back[0], lab[0], atol=0.3)  # in gamut: untouched
    for got, want in zip(back[1:, 1:], lab[1:, 1:]):  # out of gamut: less chroma, roughly the same hue
        assert np.hypot(*got) < np.hypot(*want)
        assert np.dot(got, want) / (np.linalg.norm(got) * np.linalg.norm(want)) > 0.9


def test_zero_chroma_gives_gray(gray_photo):
    l_full = color.luminance(gray_photo)
    out = color.merge_l_ab(l_full, np.zeros((16, 16, 2), np.float32))
    assert np.abs(out[:, :, 0].astype(int) - out[:, :, 2]).max() <= 1
    assert np.abs(out[:, :, 0].astype(int) - gray_photo).max() <= 1


def test_gray8_luminance_lookup_equals_the_full_conversion():
    gray = np.random.default_rng(1).integers(0, 256, (300, 257), dtype=np.uint8)
    gray[0, :256] = np.arange(256)  # every level
    full = color.rgb_to_lab(color.to_float_rgb(gray)[0])[:, :, 0]
    assert np.array_equal(color.luminance(gray), full)
    assert np.array_equal(color.luminance(gray[:, :, None]), full)
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 7)])  # gray stored as RGB(A): the same lookup
    assert np.array_equal(color.luminance(rgba), full)
    rgba[299, 256, 1] ^= 1  # one coloured pixel in the last strip: the full conversion, which differs there
    assert np.array_equal(color.luminance(rgba), color.rgb_to_lab(color.to_float_rgb(rgba)[0])[:, :, 0])


def test_strip_by_strip_equals_whole_image(monkeypatch):
    """Images taller than a strip: luminance and merge give what a one-strip conversion gives."""
    rng = np.random.default_rng(2)
    rgb16 = rng.integers(0, 65536, (70, 40, 4), dtype=np.uint16)
    l, ab = color.luminance(rgb16), rng.normal(0, 40, (9, 5, 2)).astype(np.float32)
    merged = color.merge_l_ab(l, ab)
    monkeypatch.setattr(color, "STRIP_ROWS", 16)
    assert np.array_equal(color.luminance(rgb16), l)
    assert np.array_equal(color.merge_l_ab(l, ab), merged)


def test_alpha_channel_scales_like_the_colour():
    rgba16 = np.zeros((2, 3, 4), np.uint16)
    rgba16[:, :, 3] = 65535
    assert color.alpha_channel(rgba16).min() == 255 and color.alpha_channel(rgba16[:, :, :3]) is None
