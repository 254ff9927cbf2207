"""recolor vs DeOldify's architectures: image latency, folder throughput, peak memory, start-up, video fps.

Every latency goes through the same harness: `Colorizer.colorize` on the same photo at the same render size
(recolor's aspect-kept size, area ≈ (rf·16)²), so colour conversion, resizing and merging are counted for
all models alike and only the network differs. The references are `benchmarks.reference` (random weights).
All models run in this one process, interleaved per setting, and the table reports ratios: absolute times
on a shared 2-core machine are noise, ratios measured side by side are not.

Peak RSS and `recolor --help` run the real CLI in a subprocess (fresh interpreter, as a user would).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import SHARED_DATA, big_photo

SIZES = {"1920x1080": (1080, 1920), "4000x3000": (3000, 4000)}
RENDER_FACTORS = (35, 16, 21, 45)  # rf 35 first: the target setting is measured even if a later one is cut


@dataclass(frozen=True)
class Plan:
    """How much to run: full (the suite, < 10 min on 2 cores) or quick (a smoke test in seconds)."""
    sizes: dict
    render_factors: tuple[int, ...]
    recolor_reps: int = 3
    reference_reps: dict | None = None  # rf -> runs per reference (missing: 1)
    reference_skip: tuple[tuple[str, int], ...] = ()  # (size, rf) where references are not run
    folder_photos: int = 50
    video_seconds: tuple[float, float] = (10.0, 60.0)
    video_memory_rf: int = 7  # memory vs length does not depend on rf; rf 7 keeps the 60 s run inside the budget


FULL = Plan(SIZES, RENDER_FACTORS, reference_reps=None, reference_skip=(("4000x3000", 45),))
QUICK = Plan({"320x240": (240, 320)}, (7, 10), 1, None, (), 6, (1.0, 2.0), 7)


def timed(fn, reps: int, warm: bool) -> float:
    """Fastest of reps calls (after one untimed call if warm): the least disturbed by other processes."""
    if warm:
        fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


# ------------------------------------------------------------------------------------------ image latency
def image_latency(colorizers: dict, plan: Plan, log) -> list[dict]:
    """Seconds per photo for each model at each (input size, rf); references run fewer, unwarmed reps."""
    rows = []
    for size_name, (h, w) in plan.sizes.items():
        gray = big_photo(h, w).mean(axis=2).astype(np.uint8)  # a B&W photo, (H, W)
        for rf in plan.render_factors:
            from recolor.color import render_size
            row = {"input": size_name, "rf": rf, "render_size": "x".join(map(str, render_size(h, w, rf)[::-1]))}
            for name, c in colorizers.items():
                is_ref = name.startswith("deoldify")
                if is_ref and (size_name, rf) in plan.reference_skip:
                    row[name] = None
                    continue
                reps = (plan.reference_reps or {}).get(rf, 1) if is_ref else plan.recolor_reps
                row[name] = timed(lambda: c.colorize(gray, rf), reps, warm=not is_ref)
                log(f"  {size_name} rf {rf} {name}: {row[name]:.2f} s")
            rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------ folder throughput
def folder_throughput(colorizer, n: int, rf: int = 35, batch_size: int = 4) -> dict:
    """Photos/s for `recolor image FOLDER` through the library: read, colorize in batches, write JPEGs."""
    from recolor.files import colorize_files, plan_jobs
    from recolor.images import find_images
    src = sorted(find_images(SHARED_DATA / "val"))[:n] if (SHARED_DATA / "val").is_dir() else []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "in")
        folder.mkdir()
        for p in src:
            shutil.copy(p, folder / p.name)
        if not src:  # no shared data: synthetic 640x480 photos
            import cv2
            for i in range(n):
                cv2.imwrite(str(folder / f"{i}.jpg"), cv2.resize(big_photo(480, 640), (640, 480)))
        plan = plan_jobs([folder], Path(tmp, "out"))
        t0 = time.perf_counter()
        outcomes = colorize_files(colorizer, plan.jobs, rf, batch_size)
        seconds = time.perf_counter() - t0
    failed = sum(o.error is not None for o in outcomes)
    return {"photos": len(outcomes), "failed": failed, "seconds": seconds, "photos_per_s": len(outcomes) / seconds,
            "rf": rf, "batch_size": batch_size}


# ------------------------------------------------------------------------------------------ subprocesses
def recolor_command() -> list[str]:
    exe = Path(sys.executable).with_name("recolor")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "recolor"]


# Runs cmd and prints its own peak RSS. A tiny middle process is needed: Linux carries the high-water RSS of a
# forked parent into the exec'd child, so a child forked straight from this (GB-sized) process would report at
# least this process's size.
_RSS_WRAPPER = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL); "
                "_, s, u = os.wait4(p.pid, 0); print(u.ru_maxrss, os.waitstatus_to_exitcode(s))")


def peak_rss_mb(cmd: list[str]) -> tuple[float, int, float]:
    """Run cmd; -> (its peak resident memory in MB, exit code, wall seconds)."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-S", "-c", _RSS_WRAPPER, *cmd], capture_output=True, text=True, check=True)
    kb, rc = map(int, done.stdout.split())
    return kb / 1024, rc, time.perf_counter() - t0  # ru_maxrss is in KB on Linux


def image_peak_rss(h: int = 3000, w: int = 4000, rf: int = 35) -> dict:
    """`recolor image` on one h×w photo at rf, CPU, in a fresh process: the whole CLI's peak RSS."""
    import cv2
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "photo.jpg")
        cv2.imwrite(str(src), big_photo(h, w).mean(axis=2).astype(np.uint8))
        cmd = [*recolor_command(), "image", str(src), "-o", str(Path(tmp, "out.jpg")), "-r", str(rf), "-d", "cpu"]
        mb, rc, seconds = peak_rss_mb(cmd)
    return {"input": f"{w}x{h}", "rf": rf, "peak_rss_mb": mb, "exit_code": rc, "seconds": seconds}


def help_time(reps: int = 5) -> dict:
    """Wall time of `recolor --help` in a fresh process (best and median of reps)."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run([*recolor_command(), "--help"], stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return {"best_s": min(times), "median_s": float(np.median(times)), "reps": reps}


def photo_process_time(reps: int = 7) -> dict:
    """`recolor image photo.jpg` on one 1 MP photo in a fresh process, as a user runs it: the default runtime
    and `--runtime torch` alternating (medians and the median of paired ratios)."""
    import cv2
    times: dict[str, list[float]] = {"auto": [], "torch": []}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "photo.jpg")
        cv2.imwrite(str(src), big_photo(864, 1152).mean(axis=2).astype(np.uint8))
        for _ in range(reps):
            for runtime in times:
                t0 = time.perf_counter()
                subprocess.run([*recolor_command(), "image", str(src), "-o", str(Path(tmp, "out.jpg")), "--overwrite",
                                "--runtime", runtime], stdout=subprocess.DEVNULL, check=True)
                times[runtime].append(time.perf_counter() - t0)
    return {"input": "1152x864", "reps": reps, "auto_s": float(np.median(times["auto"])),
            "torch_s": float(np.median(times["torch"])),
            "ratio": float(np.median([t / a for a, t in zip(times["auto"], times["torch"])]))}


# ------------------------------------------------------------------------------------------ video
def film_runtimes(seconds: float = 5, reps: int = 2) -> dict:
    """`recolor video` with its defaults (rf 21, smoothing, sound) on the first seconds of the 640×480 clip:
    the default runtime against `--runtime torch`, alternating; fps as the command reports it (best of reps)."""
    import re
    source = SHARED_DATA / "video" / "cup_opencv_doc.mp4"
    fps: dict[str, list[float]] = {"auto": [], "torch": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(reps):
            for runtime in fps:
                done = subprocess.run([*recolor_command(), "video", str(source), "--duration", f"{seconds:g}", "-o",
                                       str(Path(tmp, "out.mp4")), "--overwrite", "--runtime", runtime],
                                      capture_output=True, text=True, check=True)
                fps[runtime].append(float(re.search(r"frames at ([\d.]+) fps", done.stderr).group(1)))
    best = {k: max(v) for k, v in fps.items()}
    return {"seconds": seconds, "auto_fps": best["auto"], "torch_fps": best["torch"],
            "ratio": best["auto"] / best["torch"], "all": fps}


def video_benchmarks(colorizer, plan: Plan, log) -> dict:
    """End-to-end fps at 640×480 and 1280×720 (rf 21, default smoothing, audio copied), and the CLI's peak
    RSS on a short vs a long clip. Needs recolor.video (issue 4) and PyAV; skipped with a reason otherwise."""
    try:
        from recolor.video import VideoConfig, colorize_video
        import av  # noqa: F401
    except ImportError as e:
        return {"skipped": f"recolor.video or PyAV not importable ({e})"}
    source = SHARED_DATA / "video" / "cup_opencv_doc.mp4"  # 640×480, AAC audio
    if not source.is_file():
        return {"skipped": f"{source} not found"}
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        clips = {"640x480": source, "1280x720": make_clip(source, Path(tmp, "hd.mp4"), (1280, 720), None)}
        for name, clip in clips.items():
            seconds = None if plan is FULL else plan.video_seconds[0]
            config = VideoConfig(render_factor=21 if plan is FULL else 7, duration=seconds, overwrite=True)
            result = colorize_video(colorizer, clip, Path(tmp, f"out_{name}.mp4"), config)
            out[f"fps_{name}"] = {"fps": result.fps, "frames": result.frames, "seconds": result.seconds,
                                  "audio": result.audio, "rf": config.render_factor}
            log(f"  video {name}: {result.fps:.1f} fps ({result.frames} frames, {result.audio})")
        long_clip = make_clip(source, Path(tmp, "long.mp4"), None, plan.video_seconds[1])
        for seconds in plan.video_seconds:
            cmd = [*recolor_command(), "video", str(long_clip), "-o", str(Path(tmp, f"mem{seconds:g}.mp4")), "-d", "cpu",
                   "-r", str(plan.video_memory_rf), "--duration", f"{seconds:g}", "--overwrite"]
            mb, rc, wall = peak_rss_mb(cmd)
            out[f"rss_{seconds:g}s"] = {"peak_rss_mb": mb, "exit_code": rc, "seconds": wall, "rf": plan.video_memory_rf}
            log(f"  video memory {seconds:g} s: {mb:.0f} MB (exit {rc}, {wall:.0f} s)")
    return out


def make_clip(source: Path, dest: Path, size: tuple[int, int] | None, seconds: float | None) -> Path:
    """Re-encode source (looped to `seconds` if given, resized to size=(w, h) if given) as fast H.264."""
    import av
    with av.open(str(source)) as src:
        frames = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
        rate = src.streams.video[0].average_rate
    if size is not None:
        import cv2
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in frames]
    total = int(round(float(rate) * seconds)) if seconds else len(frames)
    with av.open(str(dest), "w") as out:
        stream = out.add_stream("libx264", rate=rate, options={"preset": "ultrafast", "crf": "18"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for i in range(total):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frames[i % len(frames)], format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dest
