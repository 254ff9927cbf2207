"""recolor.train / data / losses / critic: every stage learns, a killed run resumes exactly, failures are loud."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from train_helpers import make_photos, tiny_settings

from recolor import data as rdata
from recolor.train import TrainConfig, TrainingError, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    make_photos(root / "train", 8, seed=1)
    make_photos(root / "val", 3, seed=2, prefix="val")
    return root / "train", root / "val"


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def config(folders, out: Path, **overrides) -> TrainConfig:
    return TrainConfig.from_dict({**tiny_settings(*folders, **overrides), "out": str(out)})


# ------------------------------------------------------------------------------------------- learning
def test_each_stage_lowers_its_loss(folders, tmp_path):
    run = train(config(folders, tmp_path / "run", pretrain_steps=30, critic_steps=12, gan_steps=18, log_every=6,
                       val_every=12, sizes=[32], size_fractions=[1.0], gan_lr=1e-3))
    logs = [r for r in records(run) if "val" not in r]
    # in the GAN stage (a min-max game) the generator's loss is the one that must fall
    for stage, key in (("pretrain", "loss"), ("critic", "critic"), ("gan", "loss"), ("gan", "pixel")):
        curve = [r[key] for r in logs if r["stage"] == stage]
        assert len(curve) >= 2, stage
        assert curve[-1] < curve[0], f"{stage} {key} did not fall: {curve}"
    vals = [r["val"] for r in records(run) if "val" in r]
    assert vals[-1]["delta_e"] < vals[0]["delta_e"]
    assert {"delta_e", "psnr", "colourfulness", "score"} <= set(vals[0])
    # every file the issue promises, and the results load as models
    for name in ("config.json", "data.json", "last.ckpt", "model.safetensors", "best.safetensors"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "samples").iterdir())[0].startswith("gan_")
    from recolor.engine import Colorizer
    from train_helpers import photo
    best = Colorizer.from_pretrained(str(run / "best.safetensors"), "cpu")
    out = best.colorize(photo(np.random.default_rng(0)), 7)
    assert out.shape == (72, 88, 3) and out.dtype == np.uint8
    # validation is `recolor eval` at the run's render factor: best.safetensors scores what its record says
    from recolor.evaluate import evaluate_photos
    scored = evaluate_photos(best, sorted(folders[1].iterdir()), render_factor=8).summary()["model"]
    recorded = json.loads(best.metadata["info"])["val"]
    assert scored["delta_e"] == pytest.approx(recorded["delta_e"], abs=0.05)  # weights stored in fp16


def test_validation_spreads_over_sources_and_sheets_mixed_sizes():
    from recolor.train import sample_sheet, spread
    paths = [f"{source}_{i}.jpg" for source in ("a", "b", "c") for i in range(10)]
    picked = spread(paths, 6)
    assert picked[0] == paths[0] and picked[-1] == paths[-1] and len(set(picked)) == 6
    assert {p[0] for p in picked} == {"a", "b", "c"}
    assert spread(paths[:4], 6) == paths[:4]
    tall, wide = np.zeros((90, 30, 3), np.uint8), np.zeros((40, 100, 3), np.uint8)
    sheet = sample_sheet([(tall,) * 3, (wide,) * 3], height=64)
    assert sheet.shape == (2 * (64 + 4), 3 * 160 + 2 * 4, 3)


def test_progressive_sizes_and_frozen_encoder_schedule():
    from recolor.train import encoder_frozen, size_at
    cfg = TrainConfig(data="d", out="o", pretrain_steps=100, sizes=(128, 192, 256), size_fractions=(0.6, 0.25, 0.15),
                      freeze_fraction=0.2, gan_size=192)
    assert [size_at(cfg, "pretrain", s) for s in (0, 59, 60, 84, 85, 99)] == [128, 128, 192, 192, 256, 256]
    assert size_at(cfg, "gan", 0) == 192
    assert encoder_frozen(cfg, 19) and not encoder_frozen(cfg, 20)
    assert not encoder_frozen(TrainConfig(data="d", out="o", pretrained=False), 0)  # a random encoder must learn


# ------------------------------------------------------------------------------------------- resume
def test_resume_after_sigkill_equals_uninterrupted_run(folders, tmp_path):
    settings = tiny_settings(*folders, pretrain_steps=18)
    reference = train(TrainConfig.from_dict({**settings, "out": str(tmp_path / "ref")}))

    (tmp_path / "cfg.json").write_text(json.dumps(settings))
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "recolor", "train", "--config", str(tmp_path / "cfg.json"),
                             "--out", str(killed), "--threads", "1", "--workers", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.time() + 120
    while not (killed / "last.ckpt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    ckpt = torch.load(killed / "last.ckpt", weights_only=True)
    assert ckpt["done"] != ["pretrain", "critic", "gan"], "the run ended before it could be killed"

    train(TrainConfig(data="", out=str(killed), workers=0, threads=1), resume=True)
    for name in ("model.safetensors", "best.safetensors"):
        from recolor.weights import read_weights
        _, a, meta_a = read_weights(reference / name)
        _, b, meta_b = read_weights(killed / name)
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=f"{name}:{k}")
        assert json.loads(meta_a["info"])["val"] == json.loads(meta_b["info"])["val"]
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("time", "img_per_s")} for r in rs]
    assert strip(records(killed)) == strip(records(reference))


def test_refuses_to_clobber_a_run_and_stage_needs_pretrained_generator(folders, tmp_path):
    with pytest.raises(TrainingError, match="pretrain"):
        train(config(folders, tmp_path / "empty", stage="gan"))
    run = train(config(folders, tmp_path / "run", stage="pretrain", pretrain_steps=3))
    with pytest.raises(TrainingError, match="--resume"):
        train(config(folders, run, pretrain_steps=3))
    train(config(folders, run, stage="critic", critic_steps=3))  # a later stage builds on the run's generator
    assert torch.load(run / "last.ckpt", weights_only=True)["done"] == ["pretrain", "critic"]


def test_nan_loss_stops_with_clear_message_and_checkpoint_intact(folders, tmp_path, monkeypatch):
    import recolor.train as rt
    calls = {"n": 0}
    real = rt.pixel_loss

    def poisoned(pred, ab):
        calls["n"] += 1
        loss = real(pred, ab)
        return loss * float("nan") if calls["n"] > 4 else loss

    monkeypatch.setattr(rt, "pixel_loss", poisoned)
    with pytest.raises(TrainingError, match=r"nan at pretrain step 5.*last good checkpoint"):
        train(config(folders, tmp_path / "run"))
    assert torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)["step"] == 3


# ------------------------------------------------------------------------------------------- data
def test_scan_skips_gray_and_unreadable_files(tmp_path):
    make_photos(tmp_path, 2)
    import cv2
    cv2.imwrite(str(tmp_path / "gray.png"), np.full((64, 64, 3), 128, np.uint8))
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    from recolor.images import find_images
    index = rdata.scan_photos(find_images(tmp_path))
    assert len(index.photos) == 2 and [Path(p).name for p in index.gray] == ["gray.png"]
    assert [Path(p).name for p in index.unreadable] == ["broken.jpg"]


def test_step_batches_are_a_function_of_step_and_split_across_ranks():
    size = lambda step: 32
    single = rdata.StepBatches(5, 4, seed=3, steps=range(0, 6), size_at=size)
    ranks = [rdata.StepBatches(5, 2, seed=3, steps=range(0, 6), size_at=size, rank=r, world=2) for r in (0, 1)]
    for step in range(6):
        assert single.keys(step) == ranks[0].keys(step) + ranks[1].keys(step)
    resumed = rdata.StepBatches(5, 4, seed=3, steps=range(4, 6), size_at=size)
    assert list(resumed) == [single.keys(4), single.keys(5)]
    seen = [k[0] for step in range(5) for k in single.keys(step)]  # 20 samples = 4 epochs of 5 files
    assert all(sorted(seen[i:i + 5]) == list(range(5)) for i in range(0, 20, 5))


def test_source_weights_set_how_often_each_source_is_drawn():
    paths = [f"d/{source}_{i}.jpg" for source, n in (("face", 60), ("sky", 30), ("misc", 10)) for i in range(n)]
    p = rdata.draw_probabilities(paths, {"face": 0.5, "misc": 0})
    assert p.sum() == pytest.approx(1.0) and p[0] == pytest.approx(0.5 / 60)  # faces: 30 of 60 units
    batches = rdata.StepBatches(len(paths), 50, seed=1, steps=range(40), size_at=lambda s: 32, p=p)
    drawn = [paths[k[0]].split("/")[1].split("_")[0] for keys in batches for k in keys]
    assert drawn.count("misc") == 0 and abs(drawn.count("face") / len(drawn) - 0.5) < 0.03
    again = rdata.StepBatches(len(paths), 50, seed=1, steps=range(39, 40), size_at=lambda s: 32, p=p)
    assert list(again) == [batches.keys(39)]  # still a pure function of (seed, step): resumes exactly
    assert rdata.draw_probabilities(paths, {}) is None
    with pytest.raises(ValueError, match="faces.*match no training photo"):
        rdata.draw_probabilities(paths, {"faces": 0.5})
    with pytest.raises(ValueError, match="no photo"):
        rdata.draw_probabilities(paths, {"face": 0, "sky": 0, "misc": 0})


def test_dataset_items_are_deterministic_and_noise_only_touches_input(tmp_path):
    paths = [str(p) for p in make_photos(tmp_path, 2)]
    ds = rdata.ColorPhotos(paths, seed=0, noise=3.0)
    l_in, l, ab = ds[(1, 17, 32)]
    again = ds[(1, 17, 32)]
    assert all(np.array_equal(a, b) for a, b in zip((l_in, l, ab), again))
    assert l.shape == (1, 32, 32) and ab.shape == (2, 32, 32) and l.dtype == np.float32
    assert 0 < np.abs(l_in - l).mean() < 5
    assert not np.array_equal(ds[(1, 18, 32)][2], ab)  # another sample number, another crop


# ------------------------------------------------------------------------------------------- losses
def test_lab_to_rgb_matches_opencv():
    from recolor.color import rgb_to_lab
    from recolor.losses import lab_to_rgb
    rgb = np.random.default_rng(0).uniform(0, 1, (16, 16, 3)).astype(np.float32)
    lab = torch.from_numpy(rgb_to_lab(rgb)).permute(2, 0, 1)[None]
    back = lab_to_rgb(lab[:, :1], lab[:, 1:])[0].permute(1, 2, 0).numpy()
    assert np.abs(back - rgb).max() < 3e-3


def test_feature_loss_is_zero_for_the_truth_and_unavailable_weights_fail_clearly(monkeypatch):
    from recolor.losses import FeatureLoss, PerceptualWeightsError
    loss = FeatureLoss("mobilenet_v2", pretrained=False)
    rgb = torch.rand(2, 3, 32, 32)
    assert loss(rgb, rgb).item() == 0.0
    assert loss(rgb, rgb.flip(-1)).item() > 0.0
    import torchvision.models as tvm

    def offline(name, weights=None):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(tvm, "get_model", offline)
    with pytest.raises(PerceptualWeightsError, match="vgg16_bn.*--perceptual mobilenet_v2"):
        FeatureLoss("vgg16_bn")
    with pytest.raises(ValueError, match="choose one of"):
        FeatureLoss("resnet50")


def test_colourfulness_loss_matches_the_metric_and_pulls_towards_the_truth():
    from recolor.losses import colourfulness, colourfulness_loss
    from recolor.metrics import colourfulness as metric
    from train_helpers import photo
    truth = photo(np.random.default_rng(3))
    rgb = torch.from_numpy(truth).permute(2, 0, 1)[None].float() / 255.0
    assert abs(colourfulness(rgb).item() - metric(truth)) < 1e-2
    assert colourfulness_loss(rgb, rgb).item() < 1e-6
    # a half-saturated guess: the gradient says "more colour", i.e. away from the gray of each pixel
    gray = rgb.mean(1, keepdim=True)
    guess = (gray + 0.5 * (rgb - gray)).requires_grad_(True)
    loss = colourfulness_loss(guess, rgb)
    loss.backward()
    assert loss.item() > 0.05 and ((guess.grad * (rgb - gray)).sum() < 0)


def test_zoomed_crops_show_a_smaller_part_of_the_scene():
    rng = np.random.default_rng(0)
    ramp = np.repeat(np.linspace(0, 1, 400, dtype=np.float32)[None, :, None], 300, 0).repeat(3, 2)
    spans = {zoom: np.mean([np.ptp(rdata.random_crop(ramp, 64, rng, zoom)[..., 0]) for _ in range(40)])
             for zoom in (1.0, 4.0)}
    assert spans[1.0] > 0.2 and spans[4.0] < 0.6 * spans[1.0]


def test_critic_and_hinge_losses():
    from recolor.critic import Critic, CriticConfig
    from recolor.losses import critic_hinge_loss, generator_hinge_loss
    critic = Critic(CriticConfig(nf=8))
    logits = critic(torch.rand(2, 1, 64, 64) * 100, torch.randn(2, 2, 64, 64) * 20)
    assert logits.shape == (2, 1, 6, 6)  # PatchGAN: one score per overlapping patch
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert critic_hinge_loss(real, fake).item() == pytest.approx((0 + 0.5) / 2 + (0 + 1) / 2)
    assert generator_hinge_loss(fake).item() == pytest.approx(1.0)


def test_cli_training_flags_reach_the_run_config(folders, tmp_path):
    from typer.testing import CliRunner
    from recolor.cli import app
    (tmp_path / "cfg.json").write_text(json.dumps(tiny_settings(*folders, pretrain_steps=2, stage="pretrain")))
    result = CliRunner().invoke(app, ["train", "--config", str(tmp_path / "cfg.json"), "--out", str(tmp_path / "run"),
                                      "--lr", "2e-4", "--zoom", "1.5", "--colour-weight", "0.25"])
    assert result.exit_code == 0, result.output
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (stored["lr"], stored["zoom"], stored["colour_weight"]) == (2e-4, 1.5, 0.25)
    assert stored["pretrain_steps"] == 2  # the rest still comes from --config


def test_cli_source_weights_reach_the_run_or_fail_in_one_line(folders, tmp_path):
    from typer.testing import CliRunner
    from recolor.cli import app
    (tmp_path / "cfg.json").write_text(json.dumps(tiny_settings(*folders, pretrain_steps=2, stage="pretrain")))
    base = ["train", "--config", str(tmp_path / "cfg.json")]
    result = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "run"), "--source-weight", "gen=2"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["source_weights"] == {"gen": 2.0}
    assert "draws per source: gen 100%" in result.output
    for bad, why in (("gen", "SOURCE=WEIGHT"), ("gen=-1", "0 or more"), ("faces=1", "match no training photo")):
        result = CliRunner().invoke(app, [*base, "--out", str(tmp_path / bad), "--source-weight", bad])
        output = " ".join(result.output.split())  # rich wraps long lines
        assert result.exit_code == 2 and why in output and "Traceback" not in output
