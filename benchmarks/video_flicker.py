"""Flicker benchmark for `recolor video`: does temporal smoothing remove flicker without washing colour out?

Each colour clip in ../shared/data/video is desaturated (so the colorizer sees only luminance, as with a real
black-and-white film), then colorized end to end (decode -> network -> smoothing -> H.264) at several
--smooth strengths, 0 being frame-by-frame. Measured on the decoded output files:

- CDC: mean Jensen–Shannon divergence of per-channel RGB histograms between frames t and t+1, t+2, t+4
  (Lei & Chen, CVPR 2019); lower = steadier colour distribution;
- warping error: mean squared a/b difference between frame t and frame t-1 warped onto it, on non-occluded
  pixels, flow (DIS) computed on the *input* luminance (Lai et al., ECCV 2018); lower = less flicker;
- relative warping error: warping error over the mean squared chroma of the same pixels, in %. Warping error
  grows with the square of a model's boldness; this share does not, so it compares models of different boldness;
- colourfulness: Hasler & Süsstrunk 2003, mean over frames; smoothing must not wash colour out;
- fps: frames / wall time of the whole `colorize_video` call (decode, network, smoothing, encode).

Targets (issue 4): smoothing cuts warping error by >= 40% against frame-by-frame, colourfulness drops by
<= 10%, time grows by <= 15%.

    .venv/bin/python benchmarks/video_flicker.py [--model default] [--strengths 0 0.4 0.6 0.8]

Writes benchmarks/results/video_flicker.json and .md and prints the table.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recolor import color  # noqa: E402
from recolor.engine import Colorizer  # noqa: E402
from recolor.metrics import colourfulness, warping_error  # noqa: E402
from recolor.metrics import channel_histograms, chroma_energy, input_flow, js_divergence  # noqa: E402
from recolor.video.temporal import make_dis  # noqa: E402
from recolor.video import VideoConfig, colorize_video  # noqa: E402

CLIPS = ROOT.parent / "shared" / "data" / "video"
RESULTS = ROOT / "benchmarks" / "results"
CDC_OFFSETS = (1, 2, 4)


def desaturate(src: Path, dst: Path) -> None:
    """Gray copy of a clip at the same timing (near-lossless x264), audio copied."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        v = inp.streams.video[0]
        ov = out.add_stream("libx264", rate=v.average_rate)
        ov.width, ov.height, ov.pix_fmt = v.codec_context.width, v.codec_context.height, "yuv420p"
        ov.time_base = ov.codec_context.time_base = v.time_base
        ov.options = {"crf": "10", "preset": "fast"}
        for frame in inp.decode(v):
            gray = color.luminance(frame.to_ndarray(format="rgb24"))  # CIE L, so "gray" means no chroma
            rgb = color.merge_l_ab(gray, np.zeros(gray.shape + (2,), np.float32))
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts, f.duration, f.time_base = frame.pts, frame.duration, v.time_base
            out.mux(ov.encode(f))
        out.mux(ov.encode(None))


def rgb_frames(path: Path):
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def measure(output: Path, gray: Path) -> dict:
    """Streams the output beside the gray input: CDC, warping error and colourfulness, in one pass."""
    dis = make_dis()
    hists: deque = deque(maxlen=max(CDC_OFFSETS) + 1)
    jsd = {k: [] for k in CDC_OFFSETS}
    warp_errors, energies, colourful = [], [], []
    prev_ab = prev_l = None
    for rgb_out, rgb_in in zip(rgb_frames(output), rgb_frames(gray)):
        lab = color.rgb_to_lab(rgb_out.astype(np.float32) / 255.0)
        l_in = color.luminance(rgb_in)
        hists.append(channel_histograms(rgb_out))
        for k in CDC_OFFSETS:
            if len(hists) > k:
                jsd[k].append(js_divergence(hists[-1 - k], hists[-1]))
        if prev_ab is not None:
            flow_b, mask = input_flow(prev_l, l_in, dis)
            warp_errors.append(warping_error(prev_ab, lab[..., 1:], flow_b, mask))
            energies.append(chroma_energy(lab[..., 1:], mask))
        colourful.append(colourfulness(rgb_out))
        prev_ab, prev_l = lab[..., 1:], l_in
    return {"cdc": float(np.mean([np.mean(v) for v in jsd.values() if v])),
            "warping_error": float(np.nanmean(warp_errors)),
            "relative_warping_error": float(100 * np.nanmean(warp_errors) / np.nanmean(energies)),
            "colourfulness": float(np.mean(colourful)), "frames": len(colourful)}


def run_clip(colorizer, clip: Path, strengths: list[float], render_factor: int, crf: int, duration: float | None,
             work: Path) -> list[dict]:
    gray = work / f"{clip.stem}_gray.mp4"
    desaturate(clip, gray)
    # The real colours give the floor: flow errors and chroma edges leave some warping error in any video.
    rows = [{"clip": clip.name, "smooth": "source colours", "fps": float("nan"), "seconds": float("nan"),
             "scene_cuts": 0, **measure(clip, gray)}]
    for strength in strengths:
        out = work / f"{clip.stem}_s{strength:g}.mp4"
        config = VideoConfig(render_factor=render_factor, smooth=strength, crf=crf, duration=duration, overwrite=True)
        t0 = time.perf_counter()
        result = colorize_video(colorizer, gray, out, config)
        seconds = time.perf_counter() - t0
        row = {"clip": clip.name, "smooth": strength, "fps": result.frames / seconds, "seconds": seconds,
               "scene_cuts": result.scene_cuts, **measure(out, gray)}
        rows.append(row)
        print(f"  {clip.name} smooth={strength:g}: {row['fps']:.2f} fps, warp {row['warping_error']:.2f} "
              f"({row['relative_warping_error']:.2f}% of chroma²), CDC {row['cdc']:.4f}, "
              f"colourfulness {row['colourfulness']:.1f}", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    """Markdown, each row also relative to the same clip's smooth=0 run."""
    lines = ["| clip | smooth | CDC ↓ | warping error ↓ | Δ warp | relative warp ↓ | colourfulness | Δ colour | fps | "
             "Δ time |", "|---|---|---|---|---|---|---|---|---|---|"]
    base = {r["clip"]: r for r in rows if r["smooth"] == 0}
    for r in rows:
        if isinstance(r["smooth"], str):
            lines.append(f"| {r['clip']} | {r['smooth']} | {r['cdc']:.4f} | {r['warping_error']:.2f} | | "
                         f"{r['relative_warping_error']:.2f}% | {r['colourfulness']:.1f} | | | |")
            continue
        b = base.get(r["clip"], r)
        d_warp = r["warping_error"] / b["warping_error"] - 1
        d_col = r["colourfulness"] / b["colourfulness"] - 1 if b["colourfulness"] else 0.0
        d_time = r["seconds"] / b["seconds"] - 1
        lines.append(f"| {r['clip']} | {r['smooth']:g} | {r['cdc']:.4f} | {r['warping_error']:.2f} | {d_warp:+.0%} "
                     f"| {r['relative_warping_error']:.2f}% | {r['colourfulness']:.1f} | {d_col:+.0%} | {r['fps']:.2f} "
                     f"| {d_time:+.0%} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--render-factor", type=int, default=21)
    ap.add_argument("--strengths", type=float, nargs="+", default=[0.0, 0.4, 0.6, 0.8])
    ap.add_argument("--crf", type=int, default=18, help="x264 quality of the colorized outputs (as `recolor video`)")
    ap.add_argument("--duration", type=float, default=None, help="only the first this-many seconds of each clip")
    ap.add_argument("--clips", type=Path, nargs="*", default=sorted(CLIPS.glob("*.mp4")))
    args = ap.parse_args()
    if not args.clips:
        sys.exit(f"no clips found in {CLIPS}")
    strengths = sorted(set([0.0] + args.strengths))  # 0 is the baseline every row is compared with
    colorizer = Colorizer.from_pretrained(args.model, "cpu")
    colorizer.chroma([np.zeros((64, 64), np.float32)], args.render_factor)  # warm-up, outside the timings
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in args.clips:
            rows += run_clip(colorizer, clip, strengths, args.render_factor, args.crf, args.duration, Path(tmp))
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"model": args.model, "model_source": str(getattr(colorizer.source, "path", "")),
            "render_factor": args.render_factor, "crf": args.crf, "duration": args.duration, "device": "cpu"}
    (RESULTS / "video_flicker.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    md = table(rows)
    (RESULTS / "video_flicker.md").write_text(
        f"# video flicker ({args.model}, rf {args.render_factor}, crf {args.crf}, CPU)\n\n{md}\n")
    print(md)


if __name__ == "__main__":
    main()
