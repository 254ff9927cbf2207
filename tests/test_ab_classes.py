"""Colour as classification (ab_classes.py, ModelConfig.colour_classes): bins, targets, decoding, model, training."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from train_helpers import TINY_MODEL, make_photos, tiny_settings

from recolor.ab_classes import (annealed_mean, bin_centres, class_loss, rebalancing_weights, soft_targets)
from recolor.model import ModelConfig, create_model

CENTRES = bin_centres()
CURVE = ((0.1, 0.0), (0.3, 1.6), (0.45, 1.0))  # (confidence, gain) knots, as the default's


def test_bins_cover_the_srgb_gamut_on_a_10_unit_grid():
    assert 200 < len(CENTRES) < 330  # Zhang et al. count 313 over every L
    assert torch.equal(CENTRES, bin_centres())  # the same every time
    assert (CENTRES % 10 == 0).all() and (CENTRES == 0).all(1).any()  # gray is a bin
    from recolor.color import rgb_to_lab
    red, green = (rgb_to_lab(np.array([[c]], np.float32))[0, 0, 1:] for c in ([1, 0, 0], [0, 1, 0]))
    for ab in (red, green):  # sRGB's corners have a bin within half a grid step (diagonally)
        assert torch.cdist(torch.tensor(ab)[None], CENTRES).min() <= 5 * 2**0.5 + 1e-3


def test_annealed_mean_goes_from_the_mean_to_the_mode():
    logits = torch.zeros(1, len(CENTRES), 2, 3)
    k = int(torch.cdist(torch.tensor([[40.0, 60.0]]), CENTRES).argmin())
    logits[:, k] = 3.0
    mean, mode = annealed_mean(logits, CENTRES, 1.0), annealed_mean(logits, CENTRES, 0.05)
    assert mean.shape == (1, 2, 2, 3)
    assert torch.allclose(mode[0, :, 0, 0], CENTRES[k], atol=1e-3)
    uniform_mean = CENTRES.mean(0)
    assert (mean[0, :, 0, 0] - uniform_mean).norm() < (CENTRES[k] - uniform_mean).norm() / 2  # mostly the mean


def test_the_exported_form_of_the_annealed_mean_is_the_same():
    """ONNX export decodes through exp + a 1×1 conv (fast in ONNX Runtime), eager torch through softmax + einsum;
    large logits at a low temperature would overflow a plain exp."""
    from recolor.ab_classes import _annealed_mean_as_conv
    logits = torch.randn(2, len(CENTRES), 5, 7, generator=torch.Generator().manual_seed(0)) * 30
    for t, gain, curve in ((1.0, 1.0, None), (0.38, 1.2, None), (0.05, 0.7, None), (0.3, 1.0, CURVE)):
        eager = annealed_mean(logits, CENTRES * gain, t, curve)
        assert torch.allclose(_annealed_mean_as_conv(logits, CENTRES * gain, t, curve), eager, atol=1e-3)
        assert torch.isfinite(eager).all()
    torn = logits / 20  # confidences 0.16-0.26: on the curve's rising part, where it changes the colour
    eager = annealed_mean(torn, CENTRES, 0.3, CURVE)
    assert torch.allclose(_annealed_mean_as_conv(torn, CENTRES, 0.3, CURVE), eager, atol=1e-3)
    assert (eager.norm(dim=1) < 0.9 * annealed_mean(torn, CENTRES * CURVE[1][1], 0.3).norm(dim=1)).float().mean() > 0.3


def test_the_confidence_curve_grays_unsure_colours_and_scales_sure_ones():
    k = int(torch.cdist(torch.tensor([[40.0, 60.0]]), CENTRES).argmin())
    logits = torch.zeros(1, len(CENTRES), 1, 4)
    logits[0, k, 0, 0] = 30.0  # sure: all mass on one bin (confidence 1, past the last knot)
    logits[0, k, 0, 1] = 5.0  # torn: a peak over a flat floor (confidence 0.25, between the first two knots)
    logits[0, k, 0, 2] = 5.6  # confidence 0.39, between the last two knots
    # [0, :, 0, 3]: flat (confidence 0)
    plain, curved = annealed_mean(logits, CENTRES, 0.3), annealed_mean(logits, CENTRES, 0.3, CURVE)
    assert torch.allclose(curved[..., 0], plain[..., 0]) and torch.allclose(plain[0, :, 0, 0], CENTRES[k])
    p = torch.softmax(logits[0, :, 0, 1:3].double(), 0).numpy()
    confidence = 1 + (p * np.log(p)).sum(0) / np.log(len(CENTRES))
    assert 0.2 < confidence[0] < 0.3 < 0.35 < confidence[1] < 0.45
    gains = (curved[0, :, 0].norm(dim=0) / plain[0, :, 0].norm(dim=0))[1:3]
    assert np.allclose(gains, np.interp(confidence, *zip(*CURVE)), atol=1e-3)
    assert curved[..., 3].abs().max() == 0


def test_a_curve_is_stored_with_the_model_and_checked():
    config = ModelConfig(colour_classes=True, confidence_gain=CURVE)
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    for bad in (((0.3, 1.0),), ((0.3, 1.0), (0.1, 0.0)), ((0.2, 1.0), (0.2, 0.5)), ((-0.1, 0), (0.5, 1)),
                ((0.1, 0), (1.5, 1)), ((0.1, -1.0), (0.5, 1.0))):
        with pytest.raises(ValueError, match="confidence_gain"):
            ModelConfig(colour_classes=True, confidence_gain=bad)


def test_soft_targets_sum_to_one_and_peak_at_the_nearest_bin():
    ab = torch.tensor([[30.0, -20.0], [2.0, 3.0]]).T.reshape(1, 2, 1, 2)
    target, nearest = soft_targets(ab, CENTRES)
    assert target.shape == (1, len(CENTRES), 1, 2) and torch.allclose(target.sum(1), torch.ones(1, 1, 2))
    assert (target > 0).sum(1).eq(5).all()
    assert torch.equal(CENTRES[nearest[0, 0]], torch.tensor([[30.0, -20.0], [0.0, 0.0]]))
    assert torch.equal(target.argmax(1), nearest)


def test_rebalancing_favours_rare_colours_with_mean_weight_one():
    counts = torch.tensor([1000.0, 100.0, 10.0, 1.0])
    w = rebalancing_weights(counts)
    p = counts / counts.sum()
    assert torch.isclose((p * w).sum(), torch.tensor(1.0)) and (w.diff() > 0).all()
    assert torch.allclose(rebalancing_weights(counts, mix=1.0), torch.ones(4))


def test_class_loss_prefers_the_right_colour():
    ab = torch.zeros(1, 2, 8, 8)
    ab[:, 0], ab[:, 1] = 40.0, 60.0  # one orange crop, seen at stride 4 (2 × 2)
    right, wrong = torch.zeros(1, len(CENTRES), 2, 2), torch.zeros(1, len(CENTRES), 2, 2)
    right[:, int(torch.cdist(torch.tensor([[40.0, 60.0]]), CENTRES).argmin())] = 5.0
    wrong[:, int(torch.cdist(torch.tensor([[-40.0, 30.0]]), CENTRES).argmin())] = 5.0
    weights = torch.ones(len(CENTRES))
    assert class_loss(right, ab, CENTRES, weights) < class_loss(wrong, ab, CENTRES, weights) - 3


def tiny_classes_model(curve=None):
    torch.manual_seed(0)
    return create_model(ModelConfig.from_dict({**TINY_MODEL, "colour_classes": True, "confidence_gain": curve})).eval()


def test_classes_model_maps_l_to_ab_in_the_bins_range():
    model = tiny_classes_model()
    assert not hasattr(model, "head") and len(model.blocks) == 3  # no regression head, no stride-2 block
    l = torch.rand(2, 1, 64, 96) * 100
    with torch.no_grad():
        ab, logits = model(l, with_logits=True)
        assert ab.shape == (2, 2, 64, 96) and logits.shape == (2, len(CENTRES), 16, 24)
        assert (ab.abs() <= CENTRES.abs().max()).all()


@pytest.mark.parametrize("curve", [None, ((0.02, 0.0), (0.1, 1.5), (0.2, 1.0))])
def test_classes_model_runs_alike_in_onnx_runtime(tmp_path, monkeypatch, curve):
    from recolor.engine import Colorizer
    from recolor.weights import save_weights
    monkeypatch.setenv("RECOLOR_CACHE", str(tmp_path))
    model = tiny_classes_model(curve=curve)
    with torch.no_grad():  # a peaked, varied distribution: logits far from uniform
        model.classes.net[-1].weight.normal_(0, 2.0)
    path = save_weights(model, tmp_path / "classes.safetensors", half=False)
    torch_runtime = Colorizer.from_pretrained(str(path), device="cpu", runtime="torch")
    onnx_runtime = Colorizer.from_pretrained(str(path), device="cpu", runtime="onnx")
    l = (np.random.default_rng(0).random((2, 64, 96)) * 100).astype(np.float32)
    ab = torch_runtime.predict_ab(l)
    assert ab.std() > 1.0 and np.abs(onnx_runtime.predict_ab(l) - ab).max() < 1e-2


def test_fine_tuning_turns_a_regression_model_into_a_classifier(tmp_path):
    from recolor.training import fine_tune_start
    from recolor.weights import save_weights
    regression = create_model(ModelConfig.from_dict(TINY_MODEL))
    path = save_weights(regression, tmp_path / "r.safetensors", half=False)
    classifier = fine_tune_start(path, colour_classes=True)
    assert classifier.config.colour_classes
    old = regression.state_dict()
    for k, v in classifier.state_dict().items():
        if k.startswith(("encoder.", "middle.", "blocks.")):
            assert torch.equal(v, old[k]), k


def tiny_classes_run(tmp_path, **settings) -> list[dict]:
    """A few steps of a tiny colour_classes run -> its metrics.jsonl records."""
    from recolor.training import TrainConfig, train
    make_photos(tmp_path / "train", 8, seed=1)
    make_photos(tmp_path / "val", 2, seed=2, prefix="val")
    settings = tiny_settings(tmp_path / "train", tmp_path / "val", colour_classes=True, feature_weight=0.0,
                             colour_weight=0.0, sizes=[32], size_fractions=[1.0], **settings)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: more threads only contend
    try:
        run = train(TrainConfig.from_dict({**settings, "out": str(tmp_path / "run")}))
    finally:
        torch.set_num_threads(threads)
    from recolor.weights import load_model
    assert load_model(str(run / "model.safetensors"))[0].config.colour_classes
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_classes_run_lowers_its_class_loss(tmp_path):
    records = tiny_classes_run(tmp_path, stage="pretrain", pixel_weight=0.0, pretrain_steps=30, log_every=6,
                               val_every=30)
    curve = [r["class"] for r in records if "class" in r]
    assert len(curve) == 5 and curve[-1] < 0.8 * curve[0]


@pytest.mark.slow
def test_a_classes_model_keeps_its_class_loss_in_the_adversarial_stage(tmp_path):
    adv_weight = 0.01
    records = tiny_classes_run(tmp_path, stage="all", pretrain_steps=4, critic_steps=4, gan_steps=6, gan_size=32,
                               adv_weight=adv_weight, log_every=2, val_every=100)
    logs = [r for r in records if r["stage"] == "gan" and "val" not in r]
    assert len(logs) == 3
    assert all({"class", "adv", "pixel"} <= set(r) and r["class"] > 0 and np.isfinite(r["loss"]) for r in logs)
    # the step's loss is its terms' sum: the cross-entropy is in it, not only logged
    assert all(r["loss"] == pytest.approx(r["pixel"] + r["class"] + adv_weight * r["adv"], rel=1e-4) for r in logs)
