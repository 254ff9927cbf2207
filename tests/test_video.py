"""`recolor video` on small clips made here: timing, sound, luminance, cuts, flicker, bad input, aborts, tags.

Most tests use `ContentColorizer`, a deterministic stand-in for the network (chroma computed from L, plus
optional per-frame flicker), so they check the video path itself in milliseconds per frame; one test and
the CLI tests run a real (untrained) generator end to end.
"""
from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from recolor import color, video
from recolor.cli import app
from recolor.metrics import mean_warping_error
from recolor.video import (VideoConfig, VideoError, check_input, colorize_video, default_output, parse_time)

NTSC = Fraction(30000, 1001)
SAMPLE_RATE = 48000


# ----------------------------------------------------------------------------------------------- helpers
def scene(seed: int, h: int, w: int, bright: bool = False) -> np.ndarray:
    """A smooth random gray texture, twice as wide as the frame so a window can pan across it."""
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.random((h, 2 * w)).astype(np.float32), (0, 0), 4)
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    return (255 * (0.55 + 0.4 * tex) if bright else 255 * (0.1 + 0.4 * tex)).astype(np.uint8)


def make_clip(path: Path, frames: int = 24, size=(96, 64), rate=NTSC, audio: str | None = "aac",
              cut_at: int | None = None, rotation: int = 0, codec: str = "libx264", first: int = 0) -> Path:
    """A gray panning clip (optionally with a hard cut to another scene) and a 440 Hz sine track; `first` is the
    first frame's pts (in frames), the sound starting with it."""
    w, h = size
    scenes = [scene(0, h, w), scene(1, h, w, bright=True)]
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec == "libx264":
            vs.options = {"crf": "12"}
        if rotation:
            vs.set_display_rotation(rotation)
        astream = _add_audio(out, audio)
        for i in range(frames):
            tex = scenes[1 if cut_at is not None and i >= cut_at else 0]
            gray = np.ascontiguousarray(tex[:, 2 * i:2 * i + w])  # pan 2 px per frame
            f = av.VideoFrame.from_ndarray(np.dstack([gray] * 3), format="rgb24")
            f.pts, f.time_base = first + i, 1 / rate
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
        if astream is not None:
            _write_sine(out, astream, audio, seconds=float(frames / rate),
                        first=int(first / rate * SAMPLE_RATE))
    return path


def ramp_clip(path: Path, pts: list[int], time_base: Fraction, rate=NTSC, size=(64, 48), bframes: int = 3,
              sar: Fraction | None = None, tags: tuple[int, int, int] | None = None) -> Path:
    """H.264 with B-frames, frame i an even gray at 20 + 6·i (so order is visible), at the given timestamps."""
    w, h = size
    with av.open(str(path), "w", format="h264" if path.suffix == ".h264" else None) as out:
        vs = out.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.time_base = vs.codec_context.time_base = time_base
        vs.options = {"crf": "12", "bf": str(bframes)}
        if sar:
            vs.codec_context.sample_aspect_ratio = sar
        if tags:
            cc = vs.codec_context
            cc.colorspace, cc.color_primaries, cc.color_trc = tags
        for i, t in enumerate(pts):
            f = av.VideoFrame.from_ndarray(np.full((h, w, 3), 20 + 6 * i, np.uint8), format="rgb24")
            f.pts, f.time_base = t, time_base
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
    return path


def remux_with_pts_equal_dts(src: Path, dst: Path) -> Path:
    """What some cameras write: B-frames whose pts is just the dts, so decoded timestamps go backwards."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.size:
                packet.pts, packet.stream = packet.dts, stream
                out.mux(packet)
    return dst


def _add_audio(out, codec: str | None):
    if codec is None:
        return None
    stream = out.add_stream(codec, rate=SAMPLE_RATE)
    stream.layout = "mono"
    return stream


def _write_sine(out, stream, codec: str, seconds: float, first: int = 0) -> None:
    """`first`: the first sample's pts."""
    total = int(SAMPLE_RATE * seconds)
    signal = 0.3 * np.sin(2 * np.pi * 440 * np.arange(total) / SAMPLE_RATE)
    for start in range(0, total, 1024):
        chunk = signal[start:start + 1024][None]
        if codec == "aac":
            frame = av.AudioFrame.from_ndarray(chunk.astype(np.float32), format="fltp", layout="mono")
        else:  # pcm_u8
            frame = av.AudioFrame.from_ndarray((chunk * 127 + 128).astype(np.uint8), format="u8", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, first + start, Fraction(1, SAMPLE_RATE)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def video_facts(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = list(c.decode(v))
        facts = {"frames": len(frames), "rate": v.average_rate, "time_base": v.time_base,
                 "pts": [f.pts for f in frames], "rotation": frames[0].rotation,
                 "duration": float(v.duration * v.time_base) if v.duration else None,
                 "rgb": [f.to_ndarray(format="rgb24") for f in frames], "audio": None}
    with av.open(str(path)) as c:  # a fresh demuxer: seek(0) could land after the AAC priming packet
        if c.streams.audio:
            facts["audio_codec"] = c.streams.audio[0].codec_context.name
            facts["audio"] = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
    return facts


class ContentColorizer:
    """Chroma that follows the picture (a = f(L), b = g(L)), plus optional per-frame global flicker: what a
    per-frame network does, minus its cost. Duck-types `Colorizer.chroma`."""

    def __init__(self, flicker: float = 0.0, fail_after: int | None = None):
        self.rng = np.random.default_rng(0)
        self.flicker, self.fail_after, self.calls = flicker, fail_after, 0

    def chroma(self, l_full, render_factor, batch_size, hints=None, l_small=None):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("network exploded")
        out = []
        for l in l_full:
            small = color.resize_l(l, color.render_size(*l.shape, render_factor))
            # dark scene -> warm, bright scene -> cool: a cut switches colour completely
            sign = 1.0 if l.mean() < 50 else -1.0
            ab = np.dstack([sign * (20 + 0.3 * small), sign * (15 + 0.2 * small)]).astype(np.float32)
            out.append(ab + self.rng.normal(0, self.flicker, 2).astype(np.float32))
        return out


class ConstantColorizer:
    """The same a/b everywhere: the colour the output must show, whatever maths the player uses."""

    def chroma(self, l_full, render_factor, batch_size, hints=None, l_small=None):
        return [np.full(color.render_size(*l.shape, render_factor) + (2,), (30.0, 40.0), np.float32) for l in l_full]


def squeezed(text: str) -> str:
    """Text without whitespace: Rich wraps CLI output (long paths too) at the terminal's width."""
    return "".join(text.split())


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture(scope="module")
def ntsc_clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "reel.mp4")


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    from recolor.engine import Colorizer
    from recolor.model import ModelConfig, create_model
    from recolor.weights import save_weights
    path = tmp_path_factory.mktemp("model") / "untrained.safetensors"
    save_weights(create_model(ModelConfig()), path)
    return path, Colorizer.from_pretrained(str(path), "cpu")


FAST = dict(render_factor=7, preset="ultrafast", batch_size=4)


# ----------------------------------------------------------------------------------------------- timing, sound, L
def test_real_model_keeps_frames_rate_duration_audio_and_luminance(ntsc_clip, untrained, tmp_path):
    out = tmp_path / "out.mp4"
    seen = []
    result = colorize_video(untrained[1], ntsc_clip, out, VideoConfig(**FAST), lambda d, n: seen.append((d, n)))
    src, dst = video_facts(ntsc_clip), video_facts(out)
    assert result.frames == dst["frames"] == src["frames"] == 24
    assert dst["rate"] == NTSC and dst["time_base"] == src["time_base"]
    assert dst["pts"] == src["pts"]  # every frame at its source time
    assert dst["duration"] == pytest.approx(src["duration"], abs=1e-9)
    assert np.array_equal(dst["audio"], src["audio"])  # packets copied: the very same samples
    assert result.audio == "1 audio stream copied"
    assert seen[-1] == (24, 24) and all(d <= n for d, n in seen)
    # only chroma changes: L of the output is the source's, up to H.264 rounding
    l_diff = np.concatenate([np.abs(color.luminance(a) - color.luminance(b)).ravel()
                             for a, b in zip(src["rgb"], dst["rgb"])])
    assert l_diff.mean() < 1.0 and np.percentile(l_diff, 99) < 4.0


def test_each_frame_is_resized_to_the_render_size_once(ntsc_clip, untrained, tmp_path, monkeypatch):
    """The decode thread's render-size L (cuts, smoothing) is the one the network gets, not a second resize."""
    calls, resize = [], color.resize_l
    monkeypatch.setattr(color, "resize_l", lambda l, size: calls.append(size) or resize(l, size))
    colorize_video(untrained[1], ntsc_clip, tmp_path / "out.mp4", VideoConfig(**FAST))
    assert len(calls) == 24


@pytest.mark.parametrize("rate", [Fraction(25), Fraction(24000, 1001)])
def test_other_rates_and_no_audio(tmp_path, rate):
    clip = make_clip(tmp_path / "in.mp4", frames=10, rate=rate, audio=None)
    out = tmp_path / "out.mp4"
    result = colorize_video(ContentColorizer(), clip, out, VideoConfig(**FAST))
    src, dst = video_facts(clip), video_facts(out)
    assert dst["rate"] == rate and dst["frames"] == 10 and dst["pts"] == src["pts"]
    assert dst["audio"] is None and result.audio == "no audio in the source"
    assert np.abs(dst["rgb"][3].astype(int) - dst["rgb"][3][..., [2, 1, 0]]).mean() > 5  # it is in colour


def test_slice_with_start_and_duration(tmp_path):
    clip = make_clip(tmp_path / "long.mp4", frames=60)
    out = tmp_path / "slice.mp4"
    result = colorize_video(ContentColorizer(), clip, out, VideoConfig(start=0.5, duration=1.0, **FAST))
    dst = video_facts(out)
    assert result.frames == dst["frames"] == 30  # 1 s at 29.97 fps, counted from the first frame at >= 0.5 s
    assert dst["pts"][0] == 0 and dst["rate"] == NTSC
    seconds_of_audio = dst["audio"].shape[1] / SAMPLE_RATE
    assert seconds_of_audio == pytest.approx(1.0, abs=0.05)


# ----------------------------------------------------------------------------------------------- timestamps
def luminance_means(path: Path) -> list[float]:
    return [float(color.luminance(f).mean()) for f in video_facts(path)["rgb"]]


@pytest.mark.parametrize("name", ["camera.mp4", "camera.mkv", "raw.h264"])
def test_broken_timestamps_come_out_evenly_timed(tmp_path, caplog, name):
    """B-frames muxed with pts = dts (timestamps go backwards; mkv's are also rounded to 1 ms) and a raw H.264
    stream (no timestamps at all): frames come out evenly at the source's 29.97 fps, in display order."""
    clip = ramp_clip(tmp_path / ("raw.h264" if name == "raw.h264" else "good.mp4"), list(range(30)), 1 / NTSC)
    if name != "raw.h264":
        clip = remux_with_pts_equal_dts(clip, tmp_path / name)
    with av.open(str(clip)) as c:
        source_pts = [f.pts for f in c.decode(video=0)]
    assert None in source_pts or any(b <= a for a, b in zip(source_pts, source_pts[1:]))  # really broken
    out = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING, logger="recolor"):
        result = colorize_video(ContentColorizer(), clip, out, VideoConfig(**FAST))
    assert "timestamps are broken" in caplog.text
    dst = video_facts(out)
    assert result.frames == dst["frames"] == len(source_pts)
    seconds = np.array(dst["pts"]) * float(dst["time_base"])
    assert seconds[0] == 0 and seconds[-1] == pytest.approx((len(seconds) - 1) / float(NTSC), abs=1e-3)
    assert np.abs(np.diff(seconds) - 1 / float(NTSC)).max() < 1e-3  # even, but for mkv's millisecond rounding
    lum = luminance_means(out)
    assert all(b > a for a, b in zip(lum, lum[1:]))  # frames in display order


def test_variable_frame_rate_is_kept(tmp_path):
    time_base = Fraction(1, 90000)
    pts = [0]
    for i in range(19):
        pts.append(pts[-1] + (3000 if i % 3 else 6000))  # 30 fps with every third frame held twice as long
    clip = ramp_clip(tmp_path / "vfr.mp4", pts, time_base, rate=30)
    colorize_video(ContentColorizer(), clip, tmp_path / "out.mp4", VideoConfig(**FAST))
    dst = video_facts(tmp_path / "out.mp4")
    assert dst["time_base"] == time_base and dst["pts"] == pts


def test_slice_counts_from_the_streams_first_timestamp(tmp_path):
    clip = make_clip(tmp_path / "late.mp4", frames=60, first=300)  # video and sound start at 10.01 s
    with av.open(str(clip)) as c:
        assert c.streams.video[0].start_time > 0
    out = tmp_path / "slice.mp4"
    result = colorize_video(ContentColorizer(), clip, out, VideoConfig(start=0.5, duration=1.0, **FAST))
    src, dst = video_facts(clip), video_facts(out)
    assert result.frames == dst["frames"] == 30 and dst["pts"][0] == 0
    l_first = color.luminance(dst["rgb"][0])
    nearest = np.argmin([np.abs(l_first - color.luminance(f)).mean() for f in src["rgb"][10:20]]) + 10
    assert nearest == 15  # the first frame at or after 0.5 s into the stream
    assert dst["audio"].shape[1] / SAMPLE_RATE == pytest.approx(1.0, abs=0.05)
    colorize_video(ContentColorizer(), clip, tmp_path / "head.mp4", VideoConfig(duration=0.5, **FAST))
    assert video_facts(tmp_path / "head.mp4")["frames"] == 15  # --duration alone counts from there too


def test_rotation_metadata_is_kept(tmp_path):
    clip = make_clip(tmp_path / "phone.mp4", frames=6, rotation=90, audio=None)
    colorize_video(ContentColorizer(), clip, tmp_path / "out.mp4", VideoConfig(**FAST))
    assert video_facts(tmp_path / "out.mp4")["rotation"] == 90


def output_tags(path: Path) -> tuple:
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        return cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range, cc.sample_aspect_ratio


def test_sample_aspect_ratio_and_colour_tags_are_kept(tmp_path):
    clip = ramp_clip(tmp_path / "dv.mp4", list(range(6)), Fraction(1, 25), rate=25, size=(72, 48),
                     sar=Fraction(8, 9), tags=(6, 6, 6))  # anamorphic, SMPTE 170M (NTSC) matrix/primaries/transfer
    out = tmp_path / "out.mp4"
    colorize_video(ContentColorizer(), clip, out, VideoConfig(**FAST))
    assert output_tags(out) == (6, 6, 6, 1, Fraction(8, 9))  # 1: limited range
    src, dst = video_facts(clip), video_facts(out)
    l_diff = [np.abs(color.luminance(a) - color.luminance(b)).mean() for a, b in zip(src["rgb"], dst["rgb"])]
    assert max(l_diff) < 1.0


def test_untagged_hd_gets_bt709_tags_and_the_colours_made(tmp_path):
    clip = make_clip(tmp_path / "hd.mp4", frames=2, size=(1280, 720), audio=None)
    out = tmp_path / "out.mp4"
    colorize_video(ConstantColorizer(), clip, out, VideoConfig(smooth=0.0, **FAST))
    assert output_tags(out)[:4] == (1, 1, 1, 1)  # BT.709, limited range
    # decoded as a player would (by the tags), the colours are recolor's: 5.8 if BT.601 maths were tagged BT.709
    for rgb_in, rgb_out in zip(video_facts(clip)["rgb"], video_facts(out)["rgb"]):
        want = color.merge_l_ab(color.luminance(rgb_in), np.full(rgb_in.shape[:2] + (2,), (30, 40), np.float32))
        assert np.abs(want.astype(int) - rgb_out).mean(axis=(0, 1)).max() < 3


def test_audio_the_container_cannot_hold_is_reencoded(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=15, audio="pcm_u8")  # 8-bit PCM cannot go into mp4
    colorize_video(ContentColorizer(), clip, tmp_path / "out.mp4", VideoConfig(**FAST))
    dst = video_facts(tmp_path / "out.mp4")
    assert dst["audio_codec"] == "aac"
    assert dst["audio"].shape[1] / SAMPLE_RATE == pytest.approx(15 / float(NTSC), abs=0.05)


def test_opencv_backend_writes_a_video_without_sound(tmp_path, caplog):
    clip = make_clip(tmp_path / "in.mp4", frames=8)
    with caplog.at_level(logging.WARNING, logger="recolor"):
        result = colorize_video(ContentColorizer(), clip, tmp_path / "out.mp4", VideoConfig(backend="opencv", **FAST))
    assert "no audio" in caplog.text
    dst = video_facts(tmp_path / "out.mp4")
    assert dst["frames"] == 8 and dst["audio"] is None and result.backend == "opencv"
    assert float(dst["rate"]) == pytest.approx(float(NTSC), rel=1e-3)


# ----------------------------------------------------------------------------------------------- smoothing
def output_ab(path: Path) -> list[np.ndarray]:
    return [color.rgb_to_lab(f.astype(np.float32) / 255)[..., 1:] for f in video_facts(path)["rgb"]]


def test_smoothing_lowers_flicker_end_to_end(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=20, size=(128, 96), audio=None)
    l_in = [color.luminance(f) for f in video_facts(clip)["rgb"]]
    errors = {}
    for smooth in (0.0, 0.8):
        out = tmp_path / f"s{smooth}.mp4"
        colorize_video(ContentColorizer(flicker=5.0), clip, out, VideoConfig(smooth=smooth, **FAST))
        errors[smooth] = mean_warping_error(output_ab(out), l_in)
    assert errors[0.8] < 0.5 * errors[0.0]


def test_no_colour_bleeds_across_a_hard_cut(tmp_path):
    clip = make_clip(tmp_path / "cut.mp4", frames=16, cut_at=8, audio=None)
    out = tmp_path / "out.mp4"
    result = colorize_video(ContentColorizer(), clip, out, VideoConfig(smooth=0.9, **FAST))
    ab = output_ab(out)
    assert result.scene_cuts == 1
    assert ab[7][..., 0].mean() > 15  # last frame before the cut: warm
    first_after = ab[8][..., 0]
    assert first_after.mean() < -15 and first_after.max() < -5  # first frame after: cool everywhere


# ----------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kind, message", [
    ("missing", "no such file"), ("empty", "empty file"), ("text", "not a video"),
    ("image", "is an image"), ("audio_only", "no video stream"), ("folder", "is a folder")])
def test_bad_inputs_get_a_clear_error(tmp_path, kind, message):
    path = tmp_path / f"bad.{'png' if kind == 'image' else 'm4a' if kind == 'audio_only' else 'mp4'}"
    if kind == "empty":
        path.touch()
    elif kind == "text":
        path.write_text("this is not a video\n" * 50)
    elif kind == "image":
        cv2.imwrite(str(path), np.zeros((16, 16, 3), np.uint8))
    elif kind == "audio_only":
        with av.open(str(path), "w") as out:
            _write_sine(out, _add_audio(out, "aac"), "aac", seconds=0.5)
    elif kind == "folder":
        path.mkdir()
    with pytest.raises(VideoError, match=message) as err:
        colorize_video(ContentColorizer(), path, tmp_path / "out.mp4", VideoConfig(**FAST))
    assert str(path) in str(err.value)
    assert not (tmp_path / "out.mp4").exists()


def test_zero_frames_is_an_error(tmp_path):
    path = tmp_path / "empty_stream.avi"  # avi keeps a video stream that never got a frame (mp4 drops it)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("mjpeg", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuvj420p"
        out.start_encoding()
        out.mux(vs.encode(None))
    with pytest.raises(VideoError, match="no video frames"):
        colorize_video(ContentColorizer(), path, tmp_path / "out.mp4", VideoConfig(**FAST))
    assert list(tmp_path.iterdir()) == [path]


def test_a_corrupt_frame_is_replaced_with_a_warning(tmp_path, caplog):
    clip = make_clip(tmp_path / "in.avi", frames=12, audio=None, codec="mjpeg")
    data = bytearray(clip.read_bytes())
    starts = [i for i in range(len(data) - 3) if data[i:i + 3] == b"\xff\xd8\xff"]  # JPEG frame starts
    data[starts[6]:starts[7] - 16] = bytes(starts[7] - 16 - starts[6])  # wipe frame 6
    clip.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="recolor"):
        result = colorize_video(ContentColorizer(), clip, tmp_path / "out.mp4", VideoConfig(**FAST))
    assert "corrupt frame" in caplog.text and result.skipped == 1
    dst = video_facts(tmp_path / "out.mp4")
    assert dst["frames"] == 12  # the lost frame shows the previous picture: count and timing hold
    assert np.abs(dst["rgb"][6].astype(int) - dst["rgb"][5]).mean() < 1.0


# ----------------------------------------------------------------------------------------------- outputs
def no_leftovers(folder: Path, keep: set[str]) -> bool:
    return {p.name for p in folder.iterdir()} == keep


def test_ctrl_c_leaves_no_output(ntsc_clip, tmp_path):
    out = tmp_path / "out.mp4"

    def interrupt(done, total):
        if done >= 4:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        colorize_video(ContentColorizer(), ntsc_clip, out, VideoConfig(batch_size=2, render_factor=7), interrupt)
    assert no_leftovers(tmp_path, set())


def test_a_crash_mid_video_leaves_no_output(ntsc_clip, tmp_path):
    with pytest.raises(RuntimeError, match="exploded"):
        colorize_video(ContentColorizer(fail_after=2), ntsc_clip, tmp_path / "out.mp4", VideoConfig(**FAST))
    assert no_leftovers(tmp_path, set())


@pytest.mark.parametrize("where", ["__init__", "write", "finish"])
def test_a_full_disk_is_one_clear_error_and_leaves_nothing(ntsc_clip, tmp_path, monkeypatch, where):
    monkeypatch.setattr(video.PyAVWriter, where, no_space)
    out = tmp_path / "out.mp4"
    with pytest.raises(VideoError, match=r"cannot write the video \(No space left on device\)") as err:
        colorize_video(ContentColorizer(), ntsc_clip, out, VideoConfig(**FAST))
    assert str(err.value).startswith(str(out)) and "\n" not in str(err.value)
    assert no_leftovers(tmp_path, set())


def test_an_encoder_error_in_its_thread_is_one_clear_error(ntsc_clip, tmp_path):
    config = VideoConfig(**FAST)
    object.__setattr__(config, "preset", "warpspeed")  # past the up-front check: libx264 itself refuses it
    with pytest.raises(VideoError, match="cannot write the video"):
        colorize_video(ContentColorizer(), ntsc_clip, tmp_path / "out.mp4", config)
    assert no_leftovers(tmp_path, set())


def test_only_the_encoder_thread_touches_the_output(ntsc_clip, tmp_path, monkeypatch):
    """No other thread may close the container while the encoder writes to it: the encoder thread alone opens,
    writes and aborts it, here when the network fails mid-video."""
    calls = []
    for name in ("__init__", "write", "finish", "abort"):
        def spy(self, *args, _name=name, _original=getattr(video.PyAVWriter, name), **kwargs):
            calls.append((_name, threading.current_thread().name))
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(video.PyAVWriter, name, spy)
    with pytest.raises(RuntimeError, match="exploded"):
        colorize_video(ContentColorizer(fail_after=2), ntsc_clip, tmp_path / "out.mp4", VideoConfig(**FAST))
    assert ("abort", "recolor-encode") in calls and {thread for _, thread in calls} == {"recolor-encode"}
    assert no_leftovers(tmp_path, set())


def test_outputs_are_never_clobbered(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=4, audio=None)
    assert check_input(clip, None, VideoConfig()) == tmp_path / "in_color.mp4" == default_output(clip)
    existing = tmp_path / "taken.mp4"
    existing.write_bytes(b"precious")
    with pytest.raises(VideoError, match="exists"):
        colorize_video(ContentColorizer(), clip, existing, VideoConfig(**FAST))
    assert existing.read_bytes() == b"precious"
    with pytest.raises(VideoError, match="is the input"):
        colorize_video(ContentColorizer(), clip, clip, VideoConfig(overwrite=True, **FAST))
    colorize_video(ContentColorizer(), clip, existing, VideoConfig(overwrite=True, **FAST))
    assert video_facts(existing)["frames"] == 4
    with pytest.raises(VideoError, match="H.264"):
        colorize_video(ContentColorizer(), clip, tmp_path / "out.webm", VideoConfig(**FAST))


def test_config_and_time_parsing():
    assert parse_time("90") == 90 and parse_time("1:30") == 90 and parse_time("00:01:00.5") == 60.5
    with pytest.raises(ValueError):
        parse_time("soon")
    for bad in (dict(smooth=1.5), dict(render_factor=3), dict(crf=60), dict(backend="gstreamer"),
                dict(duration=0), dict(start=-1), dict(preset="warpspeed")):
        with pytest.raises(ValueError):
            VideoConfig(**bad)


# ----------------------------------------------------------------------------------------------- CLI
def test_cli_video_default_output_and_refusals(ntsc_clip, untrained, tmp_path):
    clip = tmp_path / "reel.mp4"
    clip.write_bytes(ntsc_clip.read_bytes())
    runner = CliRunner()
    args = ["video", str(clip), "-m", str(untrained[0]), "-r", "7", "--preset", "ultrafast", "--duration", "0.3"]
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert video_facts(tmp_path / "reel_color.mp4")["frames"] == 9  # 0.3 s at 29.97 fps
    again = runner.invoke(app, args)
    assert again.exit_code != 0 and "--overwrite" in squeezed(again.output)
    missing = runner.invoke(app, ["video", str(tmp_path / "nope.mp4")])
    assert missing.exit_code != 0 and "nosuchfile" in squeezed(missing.output)
    assert isinstance(missing.exception, SystemExit)  # an error line, not a traceback
    bad_time = runner.invoke(app, ["video", str(clip), "--start", "soon"])
    assert bad_time.exit_code == 2 and "cannotreadtime" in squeezed(bad_time.output)


def test_cli_refuses_an_unknown_preset_in_one_line(ntsc_clip, tmp_path):
    args = ["video", str(ntsc_clip), "-o", str(tmp_path / "out.mp4"), "--preset", "warpspeed"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert squeezed("unknown --preset 'warpspeed': use one of ultrafast,") in squeezed(result.output)
    assert no_leftovers(tmp_path, set())


def test_cli_writer_failure_is_one_line(ntsc_clip, untrained, tmp_path, monkeypatch):
    monkeypatch.setattr(video.PyAVWriter, "write", no_space)
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(app, ["video", str(ntsc_clip), "-o", str(out), "-m", str(untrained[0]), "-r", "7",
                                      "--preset", "ultrafast", "--duration", "0.3"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert squeezed(f"error: {out}: cannot write the video (No space left on device)") in squeezed(result.output)
    assert no_leftovers(tmp_path, set())


def test_cli_video_with_onnx_runtime(ntsc_clip, untrained, tmp_path, monkeypatch):
    """--runtime onnx (the faster CPU path for film) gives the same frames and luminance as torch."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("RECOLOR_CACHE", str(tmp_path / "cache"))
    base = ["video", str(ntsc_clip), "-m", str(untrained[0]), "-r", "7", "--preset", "ultrafast", "--duration", "0.3",
            "--crf", "0", "--no-smooth"]
    for runtime in ("torch", "onnx"):
        result = CliRunner().invoke(app, base + ["-o", str(tmp_path / f"{runtime}.mp4"), "--runtime", runtime])
        assert result.exit_code == 0, result.output
    frames = {rt: [f.to_ndarray(format="rgb24").astype(int) for f in av.open(str(tmp_path / f"{rt}.mp4")).decode(video=0)]
              for rt in ("torch", "onnx")}
    assert len(frames["onnx"]) == len(frames["torch"]) == 9
    assert list((tmp_path / "cache").rglob("*.onnx"))  # the ONNX path really ran (exported once, cached)
    assert max(np.abs(a - b).mean() for a, b in zip(frames["torch"], frames["onnx"])) < 1.0


def test_film_on_the_cpu_never_imports_torch(ntsc_clip, tmp_path):
    """The default runtime on the CPU is ONNX Runtime with the shipped graph: no torch start-up for a film."""
    code = ("import sys, runpy\n"
            "sys.argv = ['recolor', 'video', sys.argv[1], '-o', sys.argv[2], '-r', '7', '--device', 'cpu']\n"
            "try:\n    runpy.run_module('recolor', run_name='__main__')\nexcept SystemExit as e:\n    assert not e.code\n"
            "assert 'torch' not in sys.modules")
    run = subprocess.run([sys.executable, "-c", code, str(ntsc_clip), str(tmp_path / "out.mp4")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert video_facts(tmp_path / "out.mp4")["frames"] == video_facts(ntsc_clip)["frames"]
