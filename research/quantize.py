"""int8 for the CPU runtime, measured: ONNX Runtime static quantization calibrated on real photos.

    python -m research.quantize [--calibration 32] [--reps 7] [--val-limit N]

The default model is exported in fp32, quantized (QDQ, per-channel int8 weights, uint8 activations, MinMax
calibration on the L planes of real training photos at render size), then both graphs run in the same
process: speed as the median of paired per-call ratios on a 1080p photo at rf 35, quality as `recolor eval`
scores both on ../shared/data/val. The project keeps int8 as the default only if it is ≥ 1.3× faster and
costs ≤ 0.05 ΔE2000 (research/README.md has the verdict). Writes benchmarks/results/quantize.json (quantize-keep.json with --keep-fp32).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, SHARED_DATA, big_photo, machine


def calibration_inputs(count: int, render_factor: int) -> list[np.ndarray]:
    """L planes (1, 1, h, w) at render size of real colour photos spread over the training folder."""
    from recolor import color
    from recolor.images import find_images, read_image
    paths = find_images(SHARED_DATA / "train")
    picked = paths[:: max(1, len(paths) // count)][:count]
    planes = []
    for path in picked:
        l = color.luminance(read_image(path))
        planes.append(color.resize_l(l, color.render_size(*l.shape[:2], render_factor))[None, None])
    return planes


def quantize(fp32: Path, out: Path, planes: list[np.ndarray], keep: list[str]) -> Path:
    """`keep`: name fragments of nodes left in fp32 (the precision-sensitive ends of the network, say)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter({"l": p.astype(np.float32)} for p in planes)

        def get_next(self):
            return next(self.items, None)

    prepared = out.with_name("prepared.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)  # dynamic H, W defeat it
    import onnx
    excluded = [n.name for n in onnx.load(str(prepared)).graph.node if any(k in n.name for k in keep)]
    quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8, nodes_to_exclude=excluded)
    return out


def paired_speed(a, b, x: np.ndarray, reps: int) -> dict:
    """Median of per-pair time ratios a/b, the two alternating so load changes hit both alike."""
    a(x), b(x)  # warm-up
    ta, tb = [], []
    for _ in range(reps):
        for f, times in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            f(x)
            times.append(time.perf_counter() - t0)
    return {"fp32_s": statistics.median(ta), "int8_s": statistics.median(tb),
            "speedup": statistics.median(x / y for x, y in zip(ta, tb))}


def quality(model, limit: int | None) -> dict:
    from recolor.engine import Colorizer
    from recolor.evaluate import evaluate_photos
    from recolor.images import find_images
    paths = find_images(SHARED_DATA / "val")[:limit]
    result = evaluate_photos(Colorizer.from_model(model), paths, 35, baseline=False)
    return result.summary()["model"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", type=int, default=32)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--val-limit", type=int, default=None)
    parser.add_argument("--keep-fp32", nargs="*", default=[], help="node-name fragments left unquantized, "
                        "e.g. attention final_res /head/ (the ends of the network)")
    args = parser.parse_args()
    from recolor import color
    from recolor.onnx_runtime import OnnxModel, export
    from recolor.weights import load_model
    folder = Path(tempfile.mkdtemp(prefix="recolor-int8-"))
    os.chdir(folder)  # the quantization tools leave temp files in the working folder
    fp32_path = export(load_model("default")[0], folder / "fp32.onnx")
    int8_path = quantize(fp32_path, folder / "int8.onnx", calibration_inputs(args.calibration, 35),
                         args.keep_fp32)
    fp32, int8 = OnnxModel(fp32_path), OnnxModel(int8_path)
    l = color.luminance(big_photo(1080, 1920))
    x = color.resize_l(l, color.render_size(*l.shape, 35))[None, None]
    results = {"machine": machine(), "render_size": list(x.shape[2:]), "calibration_photos": args.calibration,
               "keep_fp32": args.keep_fp32,
               "speed": paired_speed(fp32, int8, x, args.reps),
               "max_abs_ab_diff": float(np.abs(fp32(x) - int8(x)).max()),
               "val_fp32": quality(fp32, args.val_limit), "val_int8": quality(int8, args.val_limit),
               "size_mb": {"fp32": fp32_path.stat().st_size / 1e6, "int8": int8_path.stat().st_size / 1e6}}
    results["delta_e_cost"] = results["val_int8"]["delta_e"] - results["val_fp32"]["delta_e"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"quantize{'-keep' if args.keep_fp32 else ''}.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
