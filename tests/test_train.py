"""recolor.training (loop, data, losses, critic, ...): every stage learns, a killed run resumes exactly, failures are loud."""
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

from recolor.training import data as rdata
from recolor.model import ModelConfig
from recolor.training import TrainConfig, TrainingError, train

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
    torch.set_num_threads(1)  # tiny tensors: more threads only contend with each other (and other jobs)
    yield
    torch.set_num_threads(threads)


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def config(folders, out: Path, **overrides) -> TrainConfig:
    return TrainConfig.from_dict({**tiny_settings(*folders, **overrides), "out": str(out)})


# ------------------------------------------------------------------------------------------- learning
def test_each_stage_trains_and_the_run_folder_is_complete(folders, tmp_path):
    # Stage by stage, to see what each one changed. A GAN's losses need not fall in a few steps (a min-max
    # game), so only pretraining is held to a falling loss; the adversarial stages must run, log finite losses
    # and move the right networks. The critic's learning is tested on a fixed batch below.
    run, settings = tmp_path / "run", dict(pretrain_steps=30, critic_steps=12, gan_steps=18, log_every=6,
                                            val_every=12, sizes=[32], size_fractions=[1.0], gan_lr=1e-3)
    ckpts = {}
    for stage in ("pretrain", "critic", "gan"):
        train(config(folders, run, stage=stage, **settings))
        ckpts[stage] = torch.load(run / "last.ckpt", weights_only=True)
    logs = [r for r in records(run) if "val" not in r]
    curve = [r["loss"] for r in logs if r["stage"] == "pretrain"]
    # seeds 0-5 end at 0.30-0.65 of the first logged loss: a margin, not a lucky seed
    assert len(curve) == 5 and curve[-1] < 0.75 * curve[0], curve
    for stage, keys in (("critic", {"loss", "critic"}), ("gan", {"loss", "pixel", "critic", "adv"})):
        logged = [r for r in logs if r["stage"] == stage]
        assert len(logged) >= 2 and all(keys <= set(r) for r in logged), stage
        assert all(np.isfinite(r[k]) for r in logged for k in keys), logged

    def same(a: dict, b: dict) -> bool:
        return all(torch.equal(a[k], b[k]) for k in a)
    # NoGAN: the critic stage trains the critic alone; the GAN stage moves both networks
    assert same(ckpts["critic"]["ema"], ckpts["pretrain"]["ema"])
    assert not same(ckpts["critic"]["critic"], ckpts["pretrain"]["critic"])
    assert not same(ckpts["gan"]["ema"], ckpts["critic"]["ema"])
    assert not same(ckpts["gan"]["critic"], ckpts["critic"]["critic"])
    assert ckpts["gan"]["done"] == ["pretrain", "critic", "gan"]
    vals = [r["val"] for r in records(run) if "val" in r]
    assert len(vals) == 5 and all({"delta_e", "psnr", "colourfulness", "score"} <= set(v) for v in vals)
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


def test_critic_learns_to_tell_real_from_generated_on_a_fixed_batch(tmp_path):
    from recolor.training.distributed import Dist
    from recolor.training.state import make_optimizers, new_state
    from recolor.training.steps import Step
    paths = [str(p) for p in make_photos(tmp_path, 4, seed=1)]
    torch.manual_seed(0)
    cfg = config((tmp_path, tmp_path), tmp_path / "run")
    state = new_state(cfg, torch.device("cpu"))
    make_optimizers(state, cfg, "critic")
    step = Step(cfg, Dist(), state, state.generator, state.critic, None, None)
    dataset = rdata.ColorPhotos(paths, seed=0)
    l_in, l, ab = (torch.from_numpy(np.stack(x)) for x in zip(*[dataset[(i, i, 32)] for i in range(4)]))
    with torch.no_grad():
        fake = state.generator.eval()(l_in)

    def margin() -> float:  # mean score of the real colours minus that of the generated ones
        with torch.no_grad():
            return (state.critic(l, ab).mean() - state.critic(l, fake).mean()).item()

    assert abs(margin()) < 0.1  # a fresh critic cannot tell them apart
    losses = [step.critic(l_in, l, ab)["critic"].item() for _ in range(20)]
    # seeds 0-5 all reach a margin above 2.2 and a hinge loss under 0.32 (2 for a critic that cannot tell)
    assert margin() > 1.0 and losses[-1] < 1.0, (margin(), losses)


def test_validation_spreads_over_sources_and_sheets_mixed_sizes():
    from recolor.training.validation import sample_sheet, spread
    paths = [f"{source}_{i}.jpg" for source in ("a", "b", "c") for i in range(10)]
    picked = spread(paths, 6)
    assert picked[0] == paths[0] and picked[-1] == paths[-1] and len(set(picked)) == 6
    assert {p[0] for p in picked} == {"a", "b", "c"}
    assert spread(paths[:4], 6) == paths[:4]
    tall, wide = np.zeros((90, 30, 3), np.uint8), np.zeros((40, 100, 3), np.uint8)
    sheet = sample_sheet([(tall,) * 3, (wide,) * 3], height=64)
    assert sheet.shape == (2 * (64 + 4), 3 * 160 + 2 * 4, 3)


def test_progressive_sizes_and_frozen_encoder_schedule():
    from recolor.training.schedule import encoder_frozen, size_at
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
    import recolor.training.steps as steps
    calls = {"n": 0}
    real = steps.pixel_loss

    def poisoned(pred, ab):
        calls["n"] += 1
        loss = real(pred, ab)
        return loss * float("nan") if calls["n"] > 4 else loss

    monkeypatch.setattr(steps, "pixel_loss", poisoned)
    with pytest.raises(TrainingError, match=r"nan at pretrain step 5.*last good checkpoint"):
        train(config(folders, tmp_path / "run"))
    assert torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)["step"] == 3


def test_resume_drops_a_log_line_torn_by_the_kill(folders, tmp_path):
    from typer.testing import CliRunner
    from recolor.cli import app
    run = train(config(folders, tmp_path / "run", stage="pretrain", pretrain_steps=3))
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"stage": "pretrain", "step": 4, "loss": 0.2')  # killed mid-write
    result = CliRunner().invoke(app, ["train", "--out", str(run), "--resume", "--workers", "0", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert [r["step"] for r in records(run) if "val" not in r] == [3]


def test_resume_applies_schedule_changes_and_refuses_the_rest(folders, tmp_path):
    from typer.testing import CliRunner
    from recolor.cli import app
    settings = tiny_settings(*folders, stage="pretrain", pretrain_steps=3)
    (tmp_path / "cfg.json").write_text(json.dumps(settings))
    run = tmp_path / "run"
    cli = lambda *args: CliRunner().invoke(app, ["train", "--out", str(run), "-j", "0", "--threads", "1", *args])
    assert cli("--config", str(tmp_path / "cfg.json")).exit_code == 0
    # the CLI: options given with --resume change the run (the same --config again changes nothing)
    result = cli("--resume", "--config", str(tmp_path / "cfg.json"), "--pretrain-steps", "6", "--lr", "1e-3",
                 "--no-amp")
    assert result.exit_code == 0, result.output
    assert "resumed with amp True → False, pretrain_steps 3 → 6, lr 0.003 → 0.001" in " ".join(result.output.split())
    ckpt = torch.load(run / "last.ckpt", weights_only=True)
    assert ckpt["step"] == 6 and (ckpt["config"]["lr"], ckpt["config"]["amp"]) == (1e-3, False)
    assert json.loads((run / "config.json").read_text())["pretrain_steps"] == 6
    # ... and one that would change the data, the networks or the losses is refused, in one line
    for args in (["--seed", "5"], ["--batch-size", "2"], ["--amp", "--colour-weight", "0.1"]):
        result = cli("--resume", *args)
        output = " ".join(result.output.split())
        assert result.exit_code == 2 and "cannot change" in output and "Traceback" not in output, output
        assert args[-2].lstrip("-").replace("-", "_") in output
    assert torch.load(run / "last.ckpt", weights_only=True)["step"] == 6  # untouched
    # the API: settings away from their defaults are the changes asked for
    with pytest.raises(TrainingError, match="cannot change batch_size"):
        train(TrainConfig(data="", out=str(run), batch_size=2), resume=True)
    train(TrainConfig(data="", out=str(run), workers=0, threads=1, pretrain_steps=9), resume=True)
    assert torch.load(run / "last.ckpt", weights_only=True)["step"] == 9
    # a learning rate the checkpointed optimizer holds is replaced too
    train(config(folders, run, stage="gan", gan_steps=2))
    train(TrainConfig(data="", out=str(run), workers=0, threads=1, gan_steps=3, gan_lr=5e-5), resume=True)
    ckpt = torch.load(run / "last.ckpt", weights_only=True)
    assert (ckpt["stage"], ckpt["step"], ckpt["g_opt"]["param_groups"][0]["lr"]) == ("gan", 3, 5e-5)


def test_training_needs_data_from_python_too(folders, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # before the fix, data="" trained on the current folder
    make_photos(tmp_path, 4)
    with pytest.raises(ValueError, match="no training data"):
        train(TrainConfig.from_dict({**tiny_settings(*folders), "data": "", "out": str(tmp_path / "run")}))
    assert not (tmp_path / "run").exists()


def cli_error(*args: str) -> str:
    """Run `recolor ARGS`, expect a one-line error (no traceback, exit code 2); -> the message."""
    from typer.testing import CliRunner
    from recolor.cli import app
    result = CliRunner().invoke(app, list(args))
    output = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 2 and output.startswith("error: ") and "Traceback" not in output, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    return output


def test_a_bad_config_file_is_a_one_line_error(folders, tmp_path):
    cases = {"missing.json": (None, "cannot read it"), "bad.json": ('{"lr": 1e-3,', "not valid JSON"),
             "list.json": ("[1, 2]", "expected a JSON object"), "typo.json": ('{"lr_typo": 1}', "lr_typo"),
             "types.json": ('{"pretrain_steps": "many", "amp": 1}', "wrong type: amp=1, pretrain_steps='many'")}
    for name, (text, why) in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        output = cli_error("train", "--data", str(folders[0]), "--out", str(tmp_path / "run"), "--config",
                           str(tmp_path / name))
        assert f"--config {tmp_path / name}" in output and why in output, output


def test_a_bad_fine_tuning_start_file_is_a_one_line_error(folders, tmp_path):
    from safetensors.torch import save_file
    from recolor.model import create_model
    from recolor.weights import save_weights
    from train_helpers import TINY_MODEL
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors at all")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    tiny = save_weights(create_model(ModelConfig.from_dict(TINY_MODEL)), tmp_path / "tiny.safetensors")
    from safetensors import safe_open
    with safe_open(str(tiny), "pt") as f:  # the tensors of one model under the config of another
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    meta["config"] = json.dumps({**TINY_MODEL, "head_channels": 16})
    save_file(tensors, str(tmp_path / "mismatch.safetensors"), metadata=meta)
    for name, why in (("junk", "not a readable safetensors file"), ("foreign", "not a recolor weights file"),
                      ("mismatch", "do not fit"), ("missing", "no such file")):
        output = cli_error("train", "--data", str(folders[0]), "--out", str(tmp_path / name), "--no-pretrained",
                           "--model", str(tmp_path / f"{name}.safetensors"))
        assert why in output, output


def test_eval_refuses_an_unwritable_json_path_in_one_line(tmp_path, model_file, monkeypatch):
    make_photos(tmp_path / "photos", 2)
    (tmp_path / "file.txt").write_text("a file, not a folder")
    base = ["eval", "--data", str(tmp_path / "photos"), "--model", str(model_file), "-r", "7", "--device", "cpu"]
    assert "file.txt is a file" in cli_error(*base, "--json", str(tmp_path / "file.txt" / "out.json"))
    assert "is a folder" in cli_error(*base, "--json", str(tmp_path / "photos"))
    # a failure when writing, after scoring: one line too, exit code 1

    def refused(path, data, overwrite=False):
        raise PermissionError(13, "Permission denied", str(path))

    import recolor.images
    monkeypatch.setattr(recolor.images, "write_atomic", refused)
    from typer.testing import CliRunner
    from recolor.cli import app
    result = CliRunner().invoke(app, [*base, "--json", str(tmp_path / "out.json")])
    assert result.exit_code == 1 and "cannot write it (Permission denied)" in " ".join(result.output.split())
    assert "Traceback" not in result.output


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


def sepia(rgb: np.ndarray) -> np.ndarray:
    """The classic sepia matrix, scaled to stay in range: each pixel's colour a function of its brightness."""
    m = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], np.float32)
    return rgb @ m.T / m[0].sum()


def test_toned_prints_are_told_from_colour_photos_and_skipped_in_training_only(tmp_path):
    import cv2
    from skimage import data
    from recolor.images import find_images
    for name in ("astronaut", "coffee", "chelsea"):
        rgb = getattr(data, name)().astype(np.float32) / 255
        assert not rdata.is_toned(rgb) and rdata.is_toned(sepia(rgb)), name
        assert not rdata.is_toned(sepia(rgb)[..., ::-1])  # a blue tint (a cyanotype, a cloudy sky) is kept
        cv2.imwrite(str(tmp_path / f"{name}.png"), (rgb[..., ::-1] * 255).astype(np.uint8))
        cv2.imwrite(str(tmp_path / f"sepia_{name}.png"), (sepia(rgb)[..., ::-1] * 255).astype(np.uint8))
    training = rdata.scan_photos(find_images(tmp_path), skip_toned=True)
    assert sorted(Path(p).name for p in training.toned) == ["sepia_astronaut.png", "sepia_chelsea.png",
                                                            "sepia_coffee.png"]
    assert len(training.photos) == 3 and "3 toned" in training.summary()
    assert len(rdata.scan_photos(find_images(tmp_path)).photos) == 6  # validation scores them all


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


def test_fade_softens_and_flattens_the_input_only(tmp_path):
    paths = [str(p) for p in make_photos(tmp_path, 2)]
    plain, faded = rdata.ColorPhotos(paths, seed=0), rdata.ColorPhotos(paths, seed=0, fade=1.0)
    for sample in range(4):
        (l_in, l, ab), (f_in, f, f_ab) = plain[(0, sample, 64)], faded[(0, sample, 64)]
        assert np.array_equal(l, f) and np.array_equal(ab, f_ab) and np.array_equal(l_in, l)
        assert np.ptp(f_in) < np.ptp(l)  # lifted blacks, dulled whites
        assert np.abs(np.diff(f_in, axis=2)).mean() < np.abs(np.diff(l, axis=2)).mean()  # softer edges
        assert np.array_equal(f_in, faded[(0, sample, 64)][0])  # seeded by the sample number
    with pytest.raises(ValueError, match="fade"):
        TrainConfig(data="x", out="y", fade=1.5).check()


# ------------------------------------------------------------------------------------------- losses
def test_lab_to_rgb_matches_opencv():
    from recolor.color import rgb_to_lab
    from recolor.training.losses import lab_to_rgb
    rgb = np.random.default_rng(0).uniform(0, 1, (16, 16, 3)).astype(np.float32)
    lab = torch.from_numpy(rgb_to_lab(rgb)).permute(2, 0, 1)[None]
    back = lab_to_rgb(lab[:, :1], lab[:, 1:])[0].permute(1, 2, 0).numpy()
    assert np.abs(back - rgb).max() < 3e-3


def test_feature_loss_is_zero_for_the_truth_and_unavailable_weights_fail_clearly(folders, tmp_path, monkeypatch):
    from recolor.training.losses import FeatureLoss, PerceptualWeightsError
    loss = FeatureLoss("mobilenet_v2", pretrained=False)
    rgb = torch.rand(2, 3, 32, 32)
    assert loss(rgb, rgb).item() == 0.0
    assert loss(rgb, rgb.flip(-1)).item() > 0.0
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch hub cache: nothing is downloaded
    with pytest.raises(PerceptualWeightsError, match="vgg16_bn.*not found.*--perceptual mobilenet_v2"):
        FeatureLoss("vgg16_bn")
    with pytest.raises(TrainingError, match="mobilenet_v2-b0353104.pth.*make dev-weights"):
        train(config(folders, tmp_path / "run", pretrained=True))
    with pytest.raises(ValueError, match="choose one of"):
        FeatureLoss("resnet50")


def test_colourfulness_loss_matches_the_metric_and_pulls_towards_the_truth():
    from recolor.training.losses import colourfulness, colourfulness_loss
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
    from recolor.training.critic import Critic, CriticConfig
    from recolor.training.losses import critic_hinge_loss, generator_hinge_loss
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
                                      "--lr", "2e-4", "--zoom", "1.5", "--colour-weight", "0.25", "--classes"])
    assert result.exit_code == 0, result.output
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (stored["lr"], stored["zoom"], stored["colour_weight"], stored["colour_classes"]) == (2e-4, 1.5, 0.25, True)
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
