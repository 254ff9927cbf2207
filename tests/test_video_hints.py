"""Colour hints in a film: they start at their frame, follow the picture and end at the scene cut."""
from fractions import Fraction

import numpy as np
import pytest
from test_video import FAST, make_clip, scene

from recolor import color
from recolor.hints import Hint
from recolor.video import VideoConfig, colorize_video
from recolor.video.hinting import HintTracker
from recolor.video.temporal import CutDetector

RED = (60.0, 45.0)


class RecordingColorizer:
    """Duck-types `Colorizer.chroma`: neutral chroma, and a record of the hints each frame got."""

    def __init__(self):
        self.hints = []

    def chroma(self, l_full, render_factor, batch_size, hints=None, l_small=None):
        self.hints += hints or [None] * len(l_full)
        return [np.zeros((*color.render_size(*l.shape, render_factor), 2), np.float32) for l in l_full]


def pan(seed: int, frames: int, h: int = 64, w: int = 96, bright: bool = False) -> list[np.ndarray]:
    """L planes of a texture panning 2 px per frame (content moves left), as make_clip does."""
    tex = scene(seed, h, w, bright).astype(np.float32) / 2.55
    return [np.ascontiguousarray(tex[:, 2 * i:2 * i + w]) for i in range(frames)]


def test_a_hint_follows_the_picture_and_is_released_at_the_cut():
    tracker = HintTracker([(0.0, [Hint(60.0, 30.0, RED)])])
    cuts = CutDetector()  # as the film pipeline finds them, once per frame
    seen = [tracker(l, i / 10, cuts(l)) for i, l in enumerate(pan(0, 8) + pan(7, 3, bright=True))]
    for i in range(8):
        (hint,) = seen[i]
        assert hint.x == pytest.approx(60 - 2 * i, abs=0.5) and hint.y == pytest.approx(30, abs=0.5)
        assert hint.ab == RED
    assert seen[8:] == [None, None, None]  # another shot: the hint is gone for good


def test_hints_start_at_their_time_and_a_point_that_leaves_the_frame_is_dropped():
    tracker = HintTracker([(0.25, [Hint(5.0, 20.0, RED), Hint(80.0, 20.0, RED)])])
    seen = [tracker(l, i / 10, False) for i, l in enumerate(pan(0, 10))]
    assert seen[:3] == [None] * 3  # 0.0, 0.1, 0.2 s
    assert len(seen[3]) == 2 and seen[3][0].x == 5.0
    assert len(seen[9]) == 1 and seen[9][0].x == pytest.approx(80 - 12, abs=0.5)  # x = 5 walked off the left


def test_film_hints_reach_the_network_for_their_shot_only(tmp_path):
    clip = make_clip(tmp_path / "cut.mp4", frames=16, size=(96, 64), rate=Fraction(10), cut_at=10, audio=None)
    stub = RecordingColorizer()
    config = VideoConfig(**FAST, hints=((0.3, (Hint(50.0, 30.0, RED),)),))
    result = colorize_video(stub, clip, tmp_path / "out.mp4", config)
    assert result.frames == 16 and len(stub.hints) == 16
    assert stub.hints[:3] == [None] * 3 and stub.hints[10:] == [None] * 6
    xs = [frame[0].x for frame in stub.hints[3:10]]
    assert np.allclose(np.diff(xs), -2, atol=0.5)  # it moved with the pan


def test_hints_outside_the_frame_are_refused_before_the_model_loads(tmp_path):
    from recolor.hints import HintError
    from recolor.video import check_input
    clip = make_clip(tmp_path / "in.mp4", frames=4, size=(96, 64), audio=None)
    with pytest.raises(HintError, match="outside the 96×64 frame"):
        check_input(clip, None, VideoConfig(**FAST, hints=((0.0, (Hint(96.0, 3.0, RED),)),)))


class ChromaRecorder:
    """A real Colorizer whose chroma calls are recorded: (hints, a/b at render size) per frame, in order."""

    def __init__(self, colorizer):
        self.colorizer, self.frames = colorizer, []

    def __getattr__(self, name):
        return getattr(self.colorizer, name)

    def chroma(self, l_full, render_factor, batch_size, hints=None, l_small=None):
        out = self.colorizer.chroma(l_full, render_factor, batch_size, hints)
        self.frames += list(zip(hints or [None] * len(l_full), out))
        return out


def camera_clip(path, shot: int = 8, after: int = 3):
    """camera.png panning 2 px a frame for `shot` frames, then a cut to its mirror image, darker (256×240)."""
    import av
    import cv2
    from skimage import data
    base = cv2.resize(data.camera(), (320, 320), interpolation=cv2.INTER_AREA)
    frames = [base[40:280, 2 * i:2 * i + 256] for i in range(shot)]
    frames += [(base[40:280, ::-1][:, :256] * 0.5).astype(np.uint8)] * after
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt, stream.options = 256, 240, "yuv420p", {"crf": "12"}
        for i, gray in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.dstack([gray] * 3), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_a_film_hint_holds_its_region_for_its_shot_and_changes_nothing_else(colorizer, tmp_path):
    clip = camera_clip(tmp_path / "camera.mp4")
    grass = Hint(200.0, 170.0, RED)  # the grass right of the tripod, in the first frame's pixels
    runs = {}
    for name, hints in (("plain", ()), ("hinted", ((0.0, (grass,)),))):
        runs[name] = ChromaRecorder(colorizer)
        config = VideoConfig(render_factor=12, preset="ultrafast", batch_size=4, smooth=0.0, hints=hints)
        assert colorize_video(runs[name], clip, tmp_path / f"{name}.mp4", config).frames == 11
    for i, ((hints, ab), (_, plain)) in enumerate(zip(runs["hinted"].frames, runs["plain"].frames)):
        if i >= 8:  # the next shot: exactly as without hints
            assert hints is None and np.array_equal(ab, plain)
            continue
        (hint,) = hints
        assert hint.x == pytest.approx(200 - 2 * i, abs=1)  # it followed the pan
        h, w = ab.shape[:2]
        y, x = round(hint.y * h / 240), round(hint.x * w / 256)
        ys, xs = np.ogrid[:h, :w]
        far = np.hypot(ys - y, xs - x) > 0.5 * min(h, w)
        change = np.linalg.norm(ab - plain, axis=-1)
        assert change[far].mean() < 2.0  # the coat and the sky as they were
        spot = ab[y - 2:y + 3, x - 2:x + 3].reshape(-1, 2).mean(axis=0)
        assert np.hypot(*(spot - RED)) < 0.4 * np.hypot(*(plain[y, x] - RED))  # most of the way to red
