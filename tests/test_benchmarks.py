"""A smoke test of benchmarks/ (what backs the README's numbers): each benchmark's code runs on tiny inputs
with the tests' untrained model, so the suite cannot rot between measurements. Its numbers mean nothing."""
from __future__ import annotations

import argparse
import importlib

import cv2
import numpy as np
import pytest

KEPT = ("speed", "reference", "video_flicker", "bw_sheet", "bw_cast", "guided_colour", "serve_latency", "publish")


@pytest.mark.parametrize("name", KEPT)
def test_each_benchmark_imports(name):
    assert importlib.import_module(f"benchmarks.{name}").__doc__


def test_speed_suite_times_a_tiny_plan(colorizer):
    from benchmarks import speed
    plan = speed.Plan({"64x48": (48, 64)}, (7,), recolor_reps=1)
    rows = speed.image_latency({"recolor": colorizer}, plan, log=lambda msg: None)
    assert [(r["input"], r["rf"]) for r in rows] == [("64x48", 7)] and rows[0]["recolor"] > 0
    from benchmarks.publish import speed_rows  # a run of the suite, as `python -m benchmarks` writes it
    run = {"latency": rows, "folder": {"photos": 2, "rf": 7, "batch_size": 4, "photos_per_s": 9.0},
           "rss": {"input": "320x240", "rf": 7, "peak_rss_mb": 300.0}, "help": {"best_s": 0.1},
           "photo_process": {"input": "320x240", "reps": 3, "auto_s": 0.5, "torch_s": 2.0}}
    published = speed_rows(run)
    assert published[0][0].startswith("one 64x48 photo, rf 7") and "skipped" in published[0][1]  # no references
    assert [r[1] for r in published[1:]] == ["9.00 photos/s", "300 MB", "0.50 s (`--runtime torch`: 2.00 s)", "0.10 s"]


def test_the_sepia_measure_tells_warm_from_gray_and_blue():
    from benchmarks.bw_cast import chroma_and_warm_share
    sepia, gray, blue = (np.full((8, 8, 3), c, np.uint8) for c in ((200, 140, 60), (128, 128, 128), (40, 80, 200)))
    assert chroma_and_warm_share(sepia)[1] == 1.0
    assert chroma_and_warm_share(gray) == (pytest.approx(0, abs=0.01), 0.0)
    assert chroma_and_warm_share(blue)[1] == 0.0


def test_bw_sheet_row_is_gray_then_each_model(colorizer, gray_photo):
    from benchmarks.bw_sheet import row
    sheet = row(gray_photo[:96, :128], [colorizer, colorizer], height=48, gap=4)
    assert sheet.shape == (48, 3 * 64 + 2 * 4, 3)


def test_film_flicker_measures_a_tiny_clip(colorizer, tmp_path):
    from benchmarks.video_flicker import run_clip, table
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(6):
        writer.write(np.roll(np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1)), 3 * i, 1)[:, :, None]
                     .repeat(3, 2))
    writer.release()
    rows = run_clip(colorizer, clip, [0.0, 0.6], 7, 18, None, tmp_path)
    assert [r["smooth"] for r in rows] == ["source colours", 0.0, 0.6]
    assert all(np.isfinite(r["warping_error"]) and r["relative_warping_error"] >= 0 for r in rows)
    assert "| 0.6 |" in table(rows)


def test_guided_colour_curve_runs_on_two_photos(model_file, photo, tmp_path, capsys):
    from benchmarks.guided_colour import hint_curve
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"src_{i}.png"), cv2.cvtColor(np.roll(photo[:96, :128], 9 * i, 1), cv2.COLOR_RGB2BGR))
    hint_curve(argparse.Namespace(data=str(tmp_path), limit=2, model=str(model_file)))
    assert "| 10 |" in capsys.readouterr().out


def test_results_md_is_generated_from_the_measurements():
    import json
    from benchmarks.publish import MEASURED, RESULTS_MD, render
    sections = json.loads(MEASURED.read_text())["sections"]
    assert RESULTS_MD.read_text() == render(sections)  # edit measured.json, then `python -m benchmarks.publish`
    assert all(s["when"] and s["command"] and s["rows"] for s in sections)


def test_an_eval_json_becomes_rows(model_file, photo, tmp_path):
    from benchmarks.publish import eval_rows
    from recolor.evaluate import EvalConfig, evaluate
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"src_{i}.png"), cv2.cvtColor(photo[:64, 64 * i:64 * i + 96], cv2.COLOR_RGB2BGR))
    config = EvalConfig(str(tmp_path), str(model_file), 8, device="cpu", hints=(2,))
    rows = eval_rows(evaluate(config).to_json(config))
    assert rows[0][0] == "ΔE2000 ↓ (2 photos)" and "gray" in rows[0][1]
    assert [r[0] for r in rows[-2:]] == ["ΔE2000 on src (2)", "with 2 simulated hints: ΔE2000 / PSNR"]
