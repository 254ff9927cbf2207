"""Temporal smoothing and flicker metrics on synthetic frames (no video files, no network)."""
import cv2
import numpy as np
import pytest

from recolor.flow import warp
from recolor.metrics import (cdc, chroma_energy, colourfulness, input_flow, js_divergence, mean_warping_error,
                             warping_error)
from recolor.video.temporal import CutDetector, TemporalSmoother


def texture(h=96, w=128, seed=0, pad=16):
    """A smooth random L texture (in [20, 80]) larger than the frame, so a window can slide over it."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random((h + 2 * pad, w + 2 * pad)).astype(np.float32), (0, 0), 3)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return 20 + 60 * noise


def sliding(tex, t, h=96, w=128, pad=16):
    """Frame t of a camera pan: the window moves 1 px right per frame."""
    return np.ascontiguousarray(tex[pad:pad + h, pad + t:pad + t + w])


def chroma_of(l):
    """Chroma that follows the content (like a colorizer's): moves exactly with L."""
    return np.dstack([(l - 50) * 0.8, (50 - l) * 0.5]).astype(np.float32)


def test_warp_with_true_flow_recovers_the_previous_frame():
    tex = texture()
    prev, cur = sliding(tex, 0), sliding(tex, 1)
    flow_b = np.zeros(cur.shape + (2,), np.float32)
    flow_b[..., 0] = 1.0  # cur(x) = prev(x + 1)
    assert np.abs(warp(prev, flow_b)[:, :-1] - cur[:, :-1]).max() < 1e-3


def test_flicker_is_reduced_and_colour_kept():
    tex, rng = texture(), np.random.default_rng(1)
    ls = [sliding(tex, t) for t in range(12)]
    # per-frame global flicker (the typical per-frame colorizer failure) on top of content-tied chroma
    noisy = [chroma_of(l) + rng.normal(0, 6, 2).astype(np.float32) for l in ls]
    smoother = TemporalSmoother(0.8)
    smoothed = [smoother(l, ab) for l, ab in zip(ls, noisy)]
    before, after = mean_warping_error(noisy, ls), mean_warping_error(smoothed, ls)
    assert after < 0.4 * before
    assert smoother.scene_cuts == 0
    # the colour itself is not washed out: mean chroma magnitude within 10% of the flicker-free chroma
    mag = lambda frames: np.mean([np.abs(f).mean() for f in frames])  # noqa: E731
    assert mag(smoothed) > 0.9 * mag([chroma_of(l) for l in ls])


def test_strength_zero_is_frame_by_frame():
    tex = texture()
    smoother = TemporalSmoother(0.0)
    for t in range(3):
        ab = np.full((96, 128, 2), 10.0 * t, np.float32)
        assert np.array_equal(smoother(sliding(tex, t), ab), ab)


@pytest.mark.parametrize("same_histogram", [False, True])
def test_a_hard_cut_resets_the_state(same_histogram):
    """After a cut the output is exactly the new prediction: no colour bleeds from the old shot. With the same
    L histogram on both sides, the histogram test cannot see the cut; the flow reliability check must."""
    tex_a = texture(seed=2)
    tex_b = texture(seed=3) if same_histogram else np.clip(100 - 0.5 * texture(seed=3), 0, 100)
    smoother, cuts = TemporalSmoother(0.9), CutDetector()
    for t in range(4):
        l = sliding(tex_a, t)
        assert not cuts(l)
        smoother(l, np.full((96, 128, 2), 40.0, np.float32), False)
    ab_b = np.full((96, 128, 2), -30.0, np.float32)
    l = sliding(tex_b, 4)
    cut = cuts(l)
    assert cut != same_histogram  # the histogram sees the cut unless both shots share one
    out = smoother(l, ab_b, cut)
    assert smoother.scene_cuts == 1
    assert np.array_equal(out, ab_b)


def test_occluded_pixels_keep_the_current_prediction():
    """A square that appears in frame 1 was not in frame 0: its colour must not come from frame 0."""
    tex = texture(seed=4)
    l0, l1 = sliding(tex, 0), sliding(tex, 0).copy()
    l1[30:60, 40:80] = 95.0  # a bright object appears
    smoother = TemporalSmoother(1.0)
    smoother(l0, np.full((96, 128, 2), 40.0, np.float32))
    out = smoother(l1, np.full((96, 128, 2), -40.0, np.float32))
    assert np.abs(out[35:55, 45:75] + 40).max() < 1.0  # the new object: the new prediction
    assert np.abs(out[70:, :30] - 40).max() < 1.0  # the static background: carried over at strength 1


def test_strength_out_of_range_is_refused():
    with pytest.raises(ValueError, match="0–1"):
        TemporalSmoother(1.5)


def test_metrics_on_known_cases():
    gray = np.full((8, 8, 3), 128, np.uint8)
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    assert colourfulness(gray) == 0.0
    assert colourfulness(red) == pytest.approx(0.3 * np.hypot(255, 127.5))  # uniform: only the mean term
    assert cdc([gray, gray, gray, gray, gray]) == 0.0
    # t+1 pairs are disjoint in every channel (ln 2); t+2 and t+4 pairs are identical (0)
    assert cdc([gray, red, gray, red, gray]) == pytest.approx(np.log(2) / 3)
    p = np.array([[0.5, 0.5, 0.0]])
    assert js_divergence(p, p) == 0.0
    assert js_divergence(p, np.array([[0.0, 0.0, 1.0]])) == pytest.approx(np.log(2))
    tex = texture()
    l0, l1 = sliding(tex, 0), sliding(tex, 1)
    flow_b, mask = input_flow(l0, l1)
    assert mask.mean() > 0.8  # a plain pan: nearly every pixel is trackable
    assert warping_error(chroma_of(l0), chroma_of(l1), flow_b, mask) < 1.0  # content-tied chroma: no flicker
    assert warping_error(chroma_of(l0), chroma_of(l1) + 5, flow_b, mask) == pytest.approx(50, rel=0.1)


def test_flicker_over_chroma_energy_does_not_grow_with_boldness():
    """A model twice as colourful and as steady has four times the warping error but the same share of it."""
    tex = texture()
    l0, l1 = sliding(tex, 0), sliding(tex, 1)
    flow_b, mask = input_flow(l0, l1)
    ab0, ab1 = chroma_of(l0) + 3, chroma_of(l1) + 5  # a 2-unit flicker over the content-tied colour
    quiet = warping_error(ab0, ab1, flow_b, mask), chroma_energy(ab1, mask)
    bold = warping_error(2 * ab0, 2 * ab1, flow_b, mask), chroma_energy(2 * ab1, mask)
    assert bold[0] == pytest.approx(4 * quiet[0]) and bold[1] == pytest.approx(4 * quiet[1])
    assert bold[0] / bold[1] == pytest.approx(quiet[0] / quiet[1])
    assert chroma_energy(np.full((4, 4, 2), 3.0), np.ones((4, 4), bool)) == pytest.approx(18.0)


def test_the_flicker_metrics_leave_the_film_package_unloaded():
    """metrics.py (eval, benchmarks) shares the flow with the smoother through flow.py, not through video/."""
    import subprocess
    import sys
    code = "import sys, recolor.metrics\nassert not any(m.startswith('recolor.video') for m in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr


def test_a_film_finds_each_scene_cut_once_per_frame(tmp_path, monkeypatch):
    """With hints (tracked) and smoothing on, one histogram comparison per frame pair decides both."""
    from fractions import Fraction

    from test_video import FAST, make_clip
    from test_video_hints import RED, RecordingColorizer

    from recolor.hints import Hint
    from recolor.video import VideoConfig, colorize_video, temporal
    calls = []
    real = temporal.histogram_distance
    monkeypatch.setattr(temporal, "histogram_distance", lambda a, b: calls.append(1) or real(a, b))
    clip = make_clip(tmp_path / "cut.mp4", frames=12, size=(96, 64), rate=Fraction(10), cut_at=8, audio=None)
    config = VideoConfig(**{**FAST, "smooth": 0.6}, hints=((0.0, (Hint(50.0, 30.0, RED),)),))
    result = colorize_video(RecordingColorizer(), clip, tmp_path / "out.mp4", config)
    assert result.frames == 12 and result.scene_cuts == 1 and len(calls) == 11


def test_a_finished_film_frees_its_reader_without_a_garbage_collection(tmp_path, monkeypatch):
    """A long-running server colours film after film: no reference cycle may keep a reader (FFmpeg's decoder
    threads, its frames) alive until the collector happens by."""
    import gc
    import weakref

    from test_video import FAST, ConstantColorizer, make_clip

    from recolor.video import VideoConfig, colorize_video, pipeline
    readers = []
    real = pipeline.open_reader
    monkeypatch.setattr(pipeline, "open_reader", lambda *a: readers.append(weakref.ref(reader := real(*a))) or reader)
    clip = make_clip(tmp_path / "in.mp4", frames=8, audio=None)
    gc.collect()
    gc.disable()
    try:
        colorize_video(ConstantColorizer(), clip, tmp_path / "out.mp4", VideoConfig(**FAST))
        assert len(readers) == 1 and readers[0]() is None
    finally:
        gc.enable()
