"""The whole speed suite in one command (< 10 minutes on a 2-core CPU); `make bench` runs it.

    python -m benchmarks [--quick] [--skip-video] [--precision fp32]

Writes benchmarks/results/speed.json and speed.md (git-ignored) and prints the Markdown table.
`--quick` is a smoke test with tiny sizes; its numbers mean nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime, timezone

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI sets it; before torch loads, for all models

from . import speed
from .common import RESULTS, machine

TARGETS = {"stable_rf35": 10.0, "artistic_rf35": 4.0, "video_fps_640": 12.0, "rss_mb": 1536, "help_s": 0.5}


def build_colorizers(precision: str, runtime: str, log) -> dict:
    """recolor's default model as shipped, then the two DeOldify references, all on the CPU, fp32 references."""
    from recolor.engine import Colorizer
    from .reference import check_parameter_counts, create_reference
    counts = check_parameter_counts()
    log(f"references: {', '.join(f'{k} {v / 1e6:.1f}M params' for k, v in counts.items())}")
    colorizers = {"recolor": Colorizer.from_pretrained("default", "cpu", precision, runtime)}
    for name in counts:
        colorizers[name] = Colorizer.from_model(create_reference(name), "cpu", "fp32")
    return colorizers


def ratio(ref, ours) -> str:
    return f"{ref / ours:.1f}×" if ref and ours else "skipped"


def markdown(results: dict) -> str:
    """The README table: latency ratios first, then throughput, memory, start-up and video."""
    lines = [f"Measured {results['date']} on {results['machine']}; recolor = `{results['recolor']}`.", "",
             "| input | rf | render size | recolor | DeOldify Stable ref | DeOldify Artistic ref | "
             "× faster than Stable | × faster than Artistic |", "|---|---|---|---|---|---|---|---|"]
    for r in results["latency"]:
        s, a = r.get("deoldify-stable"), r.get("deoldify-artistic")
        cell = lambda t: f"{t:.2f} s" if t else "skipped (budget)"
        lines.append(f"| {r['input']} | {r['rf']} | {r['render_size']} | {r['recolor']:.2f} s | {cell(s)} | {cell(a)} | "
                     f"{ratio(s, r['recolor'])} | {ratio(a, r['recolor'])} |")
    lines += ["", "| measure | value | target |", "|---|---|---|"]
    f = results["folder"]
    lines.append(f"| folder of {f['photos']} val photos, rf {f['rf']}, batch {f['batch_size']} (read+colorize+write) | "
                 f"{f['photos_per_s']:.2f} photos/s | – |")
    m = results["rss"]
    lines.append(f"| peak RSS, `recolor image` {m['input']} rf {m['rf']} (whole CLI process) | {m['peak_rss_mb']:.0f} MB | ≤ 1536 MB |")
    pp = results["photo_process"]
    lines.append(f"| `recolor image` one {pp['input']} photo, whole process (median of {pp['reps']}) | "
                 f"{pp['auto_s']:.2f} s (`--runtime torch`: {pp['torch_s']:.2f} s, {pp['ratio']:.1f}×) | ≤ 1.5 s |")
    lines.append(f"| `recolor --help` wall time (best of {results['help']['reps']}) | {results['help']['best_s']:.2f} s "
                 f"(median {results['help']['median_s']:.2f} s) | ≤ 0.5 s |")
    v = results.get("video", {})
    if "skipped" in v or not v:
        lines.append(f"| video | {v.get('skipped', 'not run')} | – |")
    for key, val in v.items():
        if key.startswith("fps_"):
            lines.append(f"| video end-to-end {key[4:]}, rf {val['rf']}, smoothing on ({val['audio']}) | {val['fps']:.1f} fps | "
                         f"{'≥ 12 fps' if key == 'fps_640x480' else '–'} |")
        elif key.startswith("rss_"):
            lines.append(f"| video peak RSS, {key[4:]} of 640×480, rf {val['rf']} | {val['peak_rss_mb']:.0f} MB | flat |")
    fc = results.get("film_cli")
    if fc:
        lines.append(f"| `recolor video` defaults, first {fc['seconds']:g} s of the 640×480 clip, rf 21 (pipeline fps) | "
                     f"{fc['auto_fps']:.1f} fps (`--runtime torch`: {fc['torch_fps']:.1f} fps, {fc['ratio']:.2f}×) | "
                     f"≥ 12 fps, ≥ 1.8× torch |")
    lines.append(f"\nSuite wall time: {results['suite_seconds']:.0f} s.")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the suite runs, numbers mean nothing")
    p.add_argument("--precision", default="fp32", help="recolor's precision (targets are fp32)")
    p.add_argument("--runtime", default="auto", help="recolor's runtime: auto (ONNX Runtime on the CPU), onnx, torch")
    p.add_argument("--skip-video", action="store_true")
    a = p.parse_args()
    plan = speed.QUICK if a.quick else speed.FULL
    t0 = time.perf_counter()
    log = lambda msg: print(f"[{time.perf_counter() - t0:5.0f} s] {msg}", flush=True)
    results = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
               "recolor": f"default model, {a.precision}, {a.runtime}", "quick": a.quick}
    colorizers = build_colorizers(a.precision, a.runtime, log)
    log("image latency")
    results["latency"] = speed.image_latency(colorizers, plan, log)
    ours = colorizers.pop("recolor")
    colorizers.clear()  # free the references' ~1.2 GB before the memory measurements
    log("folder throughput")
    results["folder"] = speed.folder_throughput(ours, plan.folder_photos, 35 if not a.quick else 7)
    log("peak RSS")
    results["rss"] = speed.image_peak_rss(*((3000, 4000, 35) if not a.quick else (240, 320, 7)))
    results["help"] = speed.help_time()
    log("one photo, whole process")
    results["photo_process"] = speed.photo_process_time(3 if a.quick else 7)
    if not a.skip_video:
        log("video")
        results["video"] = speed.video_benchmarks(ours, plan, log)
        results["film_cli"] = speed.film_runtimes(1 if a.quick else 5)
    results["suite_seconds"] = time.perf_counter() - t0
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "speed-quick" if a.quick else "speed"
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (RESULTS / f"{stem}.md").write_text(table + "\n")
    print(table)
    if not a.quick:
        print(f"\nto publish it in RESULTS.md: python -m benchmarks.publish --speed {RESULTS / 'speed.json'}")


if __name__ == "__main__":
    main()
