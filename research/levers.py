"""Speed levers for CPU inference, measured one at a time as ratios (baseline time / lever time, >1 = faster).

    python -m research.levers [--rf 35] [--reps 5] [--photos 12]

Each lever is timed against its baseline in alternation (A, B, A, B, ...) in this one process, and the
median of the per-pair ratios is reported, so background load hits both sides alike. The network input is
the render size of a 1920×1080 photo. Quality levers (bf16, ONNX) also report the mean absolute a/b difference
from the fp32 eager output on real photos, and the mean CIEDE2000 ΔE against the ground truth both ways.
Results go to benchmarks/results/levers.json; research/README.md records them and what was kept.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from typing import Callable

import numpy as np
import torch

from recolor import color
from recolor.engine import Colorizer

from benchmarks.common import RESULTS, SHARED_DATA, machine, val_photos


def paired_ratio(base: Callable[[], object], lever: Callable[[], object], reps: int) -> float:
    """Median over reps of time(base) / time(lever), each pair run back to back after one warm-up each."""
    base(), lever()
    ratios = []
    for _ in range(reps):
        t0 = time.perf_counter()
        base()
        t1 = time.perf_counter()
        lever()
        ratios.append((t1 - t0) / (time.perf_counter() - t1))
    return statistics.median(ratios)


def run_model(model, x: torch.Tensor, grad_mode=torch.inference_mode, dtype=None) -> torch.Tensor:
    with grad_mode(), torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        return model(x)


def lever_bf16(model, x, reps) -> dict:
    return {"speed": paired_ratio(lambda: run_model(model, x), lambda: run_model(model, x, dtype=torch.bfloat16), reps)}


def lever_channels_last(model, x, reps) -> dict:
    cl_model = _copy(model).to(memory_format=torch.channels_last)
    cl_x = x.contiguous(memory_format=torch.channels_last)
    return {"speed": paired_ratio(lambda: run_model(model, x), lambda: run_model(cl_model, cl_x), reps)}


def lever_bf16_channels_last(model, x, reps) -> dict:
    """Both together, and ONNX Runtime fp32 against that best eager setting."""
    cl_model = _copy(model).to(memory_format=torch.channels_last)
    cl_x = x.contiguous(memory_format=torch.channels_last)
    best = lambda: run_model(cl_model, cl_x, dtype=torch.bfloat16)
    out = {"speed": paired_ratio(lambda: run_model(model, x), best, reps)}
    try:
        from recolor.onnx_runtime import OnnxModel
        ort_model, xn = OnnxModel.for_model(model), x.numpy()
        out["onnx_fp32_vs_this"] = paired_ratio(best, lambda: ort_model(xn), reps)
    except ImportError:
        pass
    return out


def lever_threads(model, x, reps) -> dict:
    """2 threads (all cores) vs 1: how much the second core buys."""
    def one_thread():
        torch.set_num_threads(1)
        run_model(model, x)
        torch.set_num_threads(n)
    n = torch.get_num_threads()
    return {"threads": n, "speed_vs_1": paired_ratio(one_thread, lambda: run_model(model, x), reps)}


def lever_inference_mode(model, x, reps) -> dict:
    return {"vs_grad_enabled": paired_ratio(lambda: run_model(model, x, contextlib.nullcontext), lambda: run_model(model, x), reps),
            "vs_no_grad": paired_ratio(lambda: run_model(model, x, torch.no_grad), lambda: run_model(model, x), reps)}


def lever_batching(model, x, reps) -> dict:
    """4 images of one render size in one call vs 4 calls."""
    x4 = x.expand(4, -1, -1, -1).contiguous()
    return {"speed": paired_ratio(lambda: [run_model(model, x) for _ in range(4)], lambda: run_model(model, x4), reps)}


def lever_onnx(colorizer, x, reps) -> dict:
    from recolor.onnx_runtime import OnnxModel
    ort_model = OnnxModel.for_weights(colorizer.source.path)
    xn = x.numpy()
    diff = float(np.abs(ort_model(xn) - run_model(colorizer.runner.model, x).numpy()).max())
    return {"speed": paired_ratio(lambda: run_model(colorizer.runner.model, x), lambda: ort_model(xn), reps),
            "max_abs_ab_diff": diff}


def lever_cv2(reps) -> dict:
    """cv2 vs skimage Lab round trip on one 1080p frame."""
    from skimage import color as skcolor
    rgb = np.random.default_rng(0).random((1080, 1920, 3), dtype=np.float32)
    return {"speed": paired_ratio(lambda: skcolor.lab2rgb(skcolor.rgb2lab(rgb)),
                                  lambda: color.lab_to_rgb(color.rgb_to_lab(rgb)), max(2, reps // 2))}


def quality(model_name: str, precisions: tuple[str, ...], runtimes: tuple[str, ...], rf: int, n: int,
            threads: int) -> dict:
    """`recolor eval`'s scoring (recolor.evaluate) on the first n val photos for each variant: its mean ΔE2000
    and the change from fp32 torch, plus the mean |Δab| of the network output vs fp32 on the same photos."""
    from recolor.evaluate import evaluate_photos
    from recolor.images import find_images
    paths = find_images(SHARED_DATA / "val")[:n]
    variants = {"fp32/torch": Colorizer.from_pretrained(model_name, "cpu", "fp32", runtime="torch")}
    variants.update({f"{p}/torch": Colorizer.from_pretrained(model_name, "cpu", p, runtime="torch")
                     for p in precisions})
    variants.update({f"fp32/{r}": Colorizer.from_pretrained(model_name, "cpu", "fp32", runtime=r) for r in runtimes})
    torch.set_num_threads(threads)  # creating a Colorizer claims all cores again
    l_small = [color.luminance(im) for im in val_photos(8)]
    base_ab = variants["fp32/torch"].chroma(l_small, rf)
    out = {}
    for key, c in variants.items():
        summary = evaluate_photos(c, paths, rf).summary()
        ab = c.chroma(l_small, rf)
        out[key] = {"photos": summary["count"], "delta_e": summary["model"]["delta_e"],
                    "mean_abs_ab_diff_vs_fp32": float(np.mean([np.abs(a - b).mean() for a, b in zip(ab, base_ab)]))}
        print(f"  {key}: {json.dumps(out[key])}", flush=True)
    for v in out.values():
        v["delta_e_change"] = v["delta_e"] - out["fp32/torch"]["delta_e"]
    return out


def _copy(model):
    import copy
    return copy.deepcopy(model)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default")
    p.add_argument("--rf", type=int, default=35)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--photos", type=int, default=326, help="val photos for the quality check (0: skip; 326: all)")
    p.add_argument("--only", nargs="*", help="run only these levers")
    p.add_argument("--quality-onnx", action="store_true", help="also score ONNX Runtime on val")
    p.add_argument("--threads", type=int, default=0, help="torch/ORT threads (0: all cores)")
    a = p.parse_args()
    colorizer = Colorizer.from_pretrained(a.model, "cpu", "fp32", runtime="torch")
    if a.threads:  # after from_pretrained, which sets all cores
        torch.set_num_threads(a.threads)  # ONNX Runtime sessions take the same count
    h, w = color.render_size(1080, 1920, a.rf)
    x = torch.rand(1, 1, h, w) * 100  # (B, 1, h, w)
    levers = {
        "bf16_autocast": lambda: lever_bf16(colorizer.runner.model, x, a.reps),
        "channels_last": lambda: lever_channels_last(colorizer.runner.model, x, a.reps),
        "bf16_channels_last": lambda: lever_bf16_channels_last(colorizer.runner.model, x, a.reps),
        "threads": lambda: lever_threads(colorizer.runner.model, x, a.reps),
        "inference_mode": lambda: lever_inference_mode(colorizer.runner.model, x, a.reps),
        "batching_4": lambda: lever_batching(colorizer.runner.model, x, max(2, a.reps // 2)),
        "onnx_runtime": lambda: lever_onnx(colorizer, x, a.reps),
        "cv2_vs_skimage": lambda: lever_cv2(a.reps),
    }
    results = {"machine": machine(), "render_size": [h, w], "model": a.model, "threads": torch.get_num_threads()}
    for name, fn in levers.items():
        if a.only and name not in a.only:
            continue
        results[name] = fn()
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    if a.photos:
        # ONNX Runtime's a/b is within 1e-4 of torch's (see onnx_runtime.max_abs_ab_diff): scored only on request
        results["quality"] = quality(a.model, ("bf16",), ("onnx",) if a.quality_onnx else (), a.rf, a.photos,
                                     torch.get_num_threads())
        print(f"quality on {a.photos} val photos at rf {a.rf}: {json.dumps(results['quality'], indent=1)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "levers.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
