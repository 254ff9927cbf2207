"""recolor.metrics and recolor.evaluate against hand-computed and published values."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from recolor import metrics
from recolor.evaluate import EvalResult, desaturate, evaluate_photos, source_of

# Sharma, Wu & Dalal (2005), Table 1: Lab pairs and their CIEDE2000 (pairs 1, 2, 7, 17, 25, 34)
SHARMA = [((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
          ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
          ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
          ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
          ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
          ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082)]


@pytest.mark.parametrize("lab1, lab2, expected", SHARMA)
def test_delta_e2000_matches_sharma_table(lab1, lab2, expected):
    assert metrics.delta_e2000_lab(np.array([lab1]), np.array([lab2])) == pytest.approx(expected, abs=1e-4)


def test_identical_images():
    rgb = np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    assert metrics.delta_e2000(rgb, rgb) == 0.0
    assert metrics.psnr(rgb, rgb) == math.inf
    assert metrics.ssim(rgb, rgb) == pytest.approx(1.0)
    assert metrics.summarize([{"psnr": math.inf}, {"psnr": 20.0}])["psnr"] == pytest.approx(60.0)  # capped at 100


def test_psnr_by_hand():
    a = np.zeros((16, 16, 3), np.uint8)
    assert metrics.psnr(a, a + 10) == pytest.approx(10 * math.log10(255**2 / 100))  # MSE 100 -> 28.13 dB
    b = a.copy()
    b[:8, :, 0] = 255  # half the pixels of one channel off by 255: MSE = 255²/6
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(6))


def test_colourfulness_by_hand():
    gray = np.repeat(np.random.default_rng(1).integers(0, 256, (20, 20, 1), dtype=np.uint8), 3, axis=2)
    assert metrics.colourfulness(gray) == 0.0  # a = b = 0 has no colour at all
    half_red = np.zeros((2, 2, 3), np.uint8)
    half_red[0, :, 0] = 255  # rg = 255 or 0, yb = 127.5 or 0: mean = std = (127.5, 63.75)
    expected = 1.3 * math.hypot(127.5, 63.75)
    assert metrics.colourfulness(half_red) == pytest.approx(expected)
    assert metrics.colourfulness(half_red.astype(np.float32) / 255) == pytest.approx(expected)


def test_delta_e_of_flat_colours_against_their_gray():
    from skimage.color import rgb2lab
    red = np.full((16, 16, 3), (200, 40, 40), np.uint8)
    gray = desaturate(red)
    assert np.ptp(gray.astype(int), axis=2).max() <= 1  # neutral
    l, a, b = rgb2lab(red[:1, :1])[0, 0]
    chroma_only = metrics.delta_e2000_lab(np.array([[l, a, b]]), np.array([[l, 0.0, 0.0]]))
    assert metrics.delta_e2000(red, gray) == pytest.approx(chroma_only, abs=0.3)
    assert metrics.delta_e2000(red, gray) > 20


def test_metrics_reject_mismatched_inputs():
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        metrics.delta_e2000(np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 3), np.float32))


# ------------------------------------------------------------------------------------------- evaluate
class Oracle:
    """A 'colorizer' that knows the answers: returns the ground truth whose luminance matches the input."""

    def __init__(self, truths):
        self.truths = truths

    def colorize_batch(self, images, render_factor, batch_size):
        from recolor.color import luminance
        out = []
        for im in images:
            errors = [np.abs(luminance(t) - luminance(im)).mean() for t in self.truths]
            out.append(self.truths[int(np.argmin(errors))])
        return out


@pytest.fixture
def photo_folder(tmp_path):
    from train_helpers import photo
    rng = np.random.default_rng(5)
    truths = {}
    for name in ("alpha_1.png", "alpha_2.png", "beta_1.png"):
        truths[name] = photo(rng)
        cv2.imwrite(str(tmp_path / name), truths[name][:, :, ::-1])
    cv2.imwrite(str(tmp_path / "gray_scan.png"), np.full((40, 40), 90, np.uint8))
    (tmp_path / "broken.jpg").write_bytes(b"junk")
    return tmp_path, truths


def test_evaluate_with_an_oracle_and_the_baseline(photo_folder):
    folder, truths = photo_folder
    from recolor.images import find_images
    result = evaluate_photos(Oracle(list(truths.values())), find_images(folder), batch_size=2)
    s = result.summary()
    assert s["count"] == 3
    assert s["model"]["delta_e"] == 0.0 and s["model"]["psnr"] == metrics.PSNR_CAP
    assert s["baseline"]["colourfulness"] < 0.5  # the a=b=0 image is neutral up to uint8 rounding
    assert s["baseline"]["delta_e"] > 5
    assert s["truth"]["colourfulness"] == pytest.approx(np.mean([metrics.colourfulness(t) for t in truths.values()]))
    assert s["model"]["colourfulness"] == pytest.approx(s["truth"]["colourfulness"])
    assert set(result.per_source()) == {"alpha", "beta"} and result.per_source()["alpha"]["count"] == 2
    skipped = {name.rsplit("/", 1)[-1]: why for name, why in result.skipped}
    assert set(skipped) == {"gray_scan.png", "broken.jpg"} and "gray" in skipped["gray_scan.png"]
    # training's validation leaves the (unchanging) baseline out and keeps the model's numbers
    quick = evaluate_photos(Oracle(list(truths.values())), find_images(folder), batch_size=2, baseline=False)
    assert quick.summary()["baseline"] == {} and quick.summary()["model"] == s["model"]


def test_washed_out_rate_counts_photos_far_below_their_truths_colourfulness():
    from recolor.evaluate import WASHED_OUT, score_photo
    truth = np.zeros((32, 32, 3), np.uint8)
    truth[:, :16] = (200, 40, 40)
    truth[:, 16:] = (40, 160, 60)
    gray = np.repeat(truth.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
    rows = [score_photo(f"p{i}", "s", truth, gray, (gray + k * (truth.astype(np.float32) - gray)).astype(np.uint8))
            for i, k in enumerate([0.1, 0.3, 0.6, 1.0])]  # a quarter to all of the truth's chroma
    shares = [r["model_colourfulness"] / r["truth_colourfulness"] for r in rows]
    assert [r["model_washed_out"] for r in rows] == [float(q < WASHED_OUT) for q in shares]
    assert [r["model_washed_out"] for r in rows] == [1.0, 1.0, 0.0, 0.0]
    assert all(r["baseline_washed_out"] == 1.0 for r in rows)  # gray is always washed out
    assert EvalResult(rows=rows).summary()["model"]["washed_out"] == 0.5


def test_source_prefix():
    from pathlib import Path
    assert source_of(Path("x/utkface_0001.jpg")) == "utkface" and source_of(Path("photo.jpg")) == "(none)"


def test_eval_command_prints_table_and_writes_json(photo_folder, model_file, tmp_path):
    from typer.testing import CliRunner
    from recolor.cli import app
    folder, _ = photo_folder
    out = tmp_path / "eval.json"
    res = CliRunner().invoke(app, ["eval", "--data", str(folder), "--model", str(model_file), "-r", "7",
                                   "--json", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "a=b=0 baseline" in res.output and "ΔE2000" in res.output
    report = json.loads(out.read_text())
    assert report["count"] == 3 and len(report["images"]) == 3 and len(report["skipped"]) == 2
    assert report["baseline"]["colourfulness"] < 0.5 and report["model"]["colourfulness"] > 0
    assert report["baseline"]["washed_out"] == 1.0 and "washed_out" in report["per_source"]["alpha"]["model"]
    res = CliRunner().invoke(app, ["eval", "--data", str(tmp_path / "nope"), "--model", str(model_file)])
    assert res.exit_code == 2 and "not a folder" in res.output


def test_empty_result_summary():
    assert EvalResult().summary()["count"] == 0



def test_differentiable_colourfulness_matches_the_metric_on_a_real_photo():
    # training's loss (float32 torch) and the metric (float64 numpy) share their constants: one definition
    import torch
    from skimage.data import coffee
    from recolor.training.losses import colourfulness
    photo = coffee()  # (400, 600, 3) uint8
    muted = (photo.mean(axis=2, keepdims=True) * 0.6 + photo * 0.4).astype(np.uint8)  # the same, less colour
    batch = torch.from_numpy(np.stack([photo, muted])).permute(0, 3, 1, 2).float() / 255.0  # (2, 3, 400, 600)
    expected = [metrics.colourfulness(photo), metrics.colourfulness(muted)]
    assert expected[0] > 50 and expected[1] < 0.6 * expected[0]  # per image, not over the batch
    assert colourfulness(batch).tolist() == pytest.approx(expected, rel=1e-4)
