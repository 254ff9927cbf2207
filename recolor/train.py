"""Training a colorizer on a folder of colour photos: DeOldify's "NoGAN" recipe, made automatic and resumable.

Stages (each can run alone in the same run folder; `all` runs them in order):
1. `pretrain` — the generator alone: smooth L1 on a/b, a perceptual loss on RGB (Johnson et al. 2016) from a
   frozen ImageNet network, and a colourfulness-matching term that counters the pixel loss's pull to gray.
   Progressive crop sizes (128 → 192 → 256 px by default, as in Karras et al.'s progressive growing and
   fastai's progressive resizing), crops zoomed so objects also appear as big as the engine renders them, and
   the pretrained encoder frozen for the first part, then trained at a lower learning rate (discriminative
   fine-tuning, Howard & Ruder 2018). AdamW, warmup + cosine decay. An exponential moving average of the
   weights (Polyak averaging) is what gets saved.
2. `critic` — the critic alone, on real vs generated colour (Antic's NoGAN: pretrain both networks separately
   so the adversarial phase starts balanced). Conditional PatchGAN (Isola et al. 2017) with spectral norm
   and self-attention (Miyato et al. 2018; Zhang et al. 2019), hinge loss.
3. `gan` — a short adversarial phase: generator loss = pixel + perceptual + λ·adversarial; two time-scale
   update rule (Heusel et al. 2017, as SAGAN uses it: critic lr 4× the generator's, Adam β = (0, 0.9)).
   Validation every N steps keeps `best.safetensors` by a validation score, so nobody has to pick DeOldify's
   "inflection point" by eye.

Run folder `runs/NAME/`: config.json, data.json (the files used), metrics.jsonl, samples/ (fixed val sheets),
last.ckpt (everything needed to resume exactly, written atomically), model.safetensors (the latest weights)
and best.safetensors (best validation score). The data order and augmentation are a pure function of
(seed, step) (`data.StepBatches`), so a run killed at any moment and resumed with `resume=True` ends with the
same weights as an uninterrupted one. Under `torchrun` the same code trains data-parallel (DDP); only rank 0
writes files or prints.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Protocol

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .atomic import replacing
from .critic import Critic, CriticConfig
from .data import (DEFAULT_ZOOM, ColorPhotos, PhotoIndex, StepBatches, draw_probabilities, scan_photos, source_of,
                   split_val)
from .evaluate import evaluate_photos
from .hints import sample_hint_planes
from .images import find_images, write_image
from .losses import (FeatureLoss, PerceptualWeightsError, colourfulness_loss, critic_hinge_loss,
                     generator_hinge_loss, lab_to_rgb, pixel_loss)
from .model import MODELS, Generator, ModelConfig, PretrainedWeightsError, apply_spectral_norm, create_model
from .weights import WeightsError, read_weights, save_weights

STAGES = ("pretrain", "critic", "gan")
RETIRED = {"val_size"}  # settings older runs stored that no longer do anything; a resume skips them
RUNTIME = ("out", "device", "workers", "threads")  # where a run executes: a resume takes these from the caller
# what a resume may change: it leaves the data, the networks, the losses and the finished steps as they were
RESUMABLE = {"lr", "critic_lr", "gan_lr", "pretrain_steps", "critic_steps", "gan_steps", "amp", "log_every",
             "val_every", "save_every"}
SAMPLE_OFFSET = {"pretrain": 0, "critic": 1 << 40, "gan": 2 << 40}  # each stage draws its own crops


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a run; stored in config.json and in last.ckpt (a resume uses the stored one)."""
    data: str
    out: str
    val: str | None = None  # folder of val photos; None: a fixed hold-out of `data`
    model: str | ModelConfig = "recolor-small"  # registered name, a .safetensors to fine-tune, or a config
    stage: str = "all"  # pretrain | critic | gan | all
    seed: int = 0
    device: str = "auto"
    workers: int = -1  # data-loader processes; -1: half the CPU cores, at most 8
    threads: int = 0  # CPU threads for torch; 0: all cores (split between processes under torchrun)
    amp: bool = True  # bf16 autocast on CPU (1.7× faster), bf16/fp16 on CUDA
    pretrained: bool = True  # ImageNet weights for the encoder and the perceptual network
    perceptual: str = "mobilenet_v2"  # mobilenet_v2 | vgg16_bn | none
    batch_size: int = 16  # per process; the global batch is batch_size × world size
    noise: float = 2.0  # max σ of Gaussian noise on the input L (L units); steadies video
    zoom: float = DEFAULT_ZOOM  # crops come from the photo scaled to a shorter side in [size, zoom·size]
    source_weights: dict[str, float] = field(default_factory=dict)  # draw weight per file-name prefix; others 1
    ema: float = 0.999  # weight averaging; 0 turns it off
    hints: bool = True  # the generator takes colour hints, drawn from each photo's own colours (hints.py)
    hint_free: float = 0.5  # share of photos drawn with no hints at all, so automatic colour does not suffer
    # stage 1: generator pretraining
    pretrain_steps: int = 3000
    sizes: tuple[int, ...] = (128, 192, 256)  # progressive crop sizes ...
    size_fractions: tuple[float, ...] = (0.6, 0.25, 0.15)  # ... and the share of pretrain steps at each
    freeze_fraction: float = 0.15  # share of pretrain steps with the pretrained encoder frozen
    lr: float = 1e-3
    encoder_lr_mult: float = 0.3  # pretrained features move slower than the fresh decoder
    weight_decay: float = 1e-2
    warmup: int = 100
    pixel_weight: float = 1.0
    feature_weight: float = 0.1  # its gradient is then ~4× the pixel loss's, as in DeOldify
    colour_weight: float = 0.5  # match each prediction's colourfulness to its ground truth's (losses.py)
    # stages 2 and 3: critic and adversarial training
    gan_size: int = 192
    critic_width: int = 64
    critic_steps: int = 300
    critic_lr: float = 4e-4
    gan_steps: int = 600
    gan_lr: float = 1e-4
    adv_weight: float = 0.01
    # validation, checkpoints, logs
    val_fraction: float = 0.05
    val_max: int = 64  # val photos scored at each validation
    val_render_factor: int = 35  # validation renders whole photos through the engine, as `recolor eval`
    val_every: int = 250
    samples: int = 6  # val photos in each sample sheet
    save_every: int = 100
    log_every: int = 10

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = {k: v for k, v in d.items() if k not in RETIRED}
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(sorted(unknown))}")
        wrong = mistyped(d)
        if wrong:
            raise ValueError(f"training settings of the wrong type: {', '.join(wrong)}")
        for key in ("sizes", "size_fractions"):
            if key in d:
                d[key] = tuple(d[key])
        if isinstance(d.get("model"), dict):
            d["model"] = ModelConfig.from_dict(d["model"])
        return cls(**d)

    def check(self) -> "TrainConfig":
        if not (self.data and str(self.data).strip()):  # "" would silently train on the current folder
            raise ValueError("no training data: set data (--data) to a folder of colour photos")
        if self.stage not in (*STAGES, "all"):
            raise ValueError(f"unknown stage {self.stage!r}; choose one of: {', '.join(STAGES)}, all")
        if len(self.sizes) != len(self.size_fractions) or abs(sum(self.size_fractions) - 1) > 1e-6:
            raise ValueError("sizes and size_fractions need the same length, and the fractions must sum to 1")
        if any(s % 32 for s in (*self.sizes, self.gan_size)):
            raise ValueError("crop sizes must be multiples of 32 (the encoder's stride)")
        if any(w < 0 for w in self.source_weights.values()):
            raise ValueError("source weights must be 0 or more")
        return self


class TrainingError(RuntimeError):
    """A run that cannot start or cannot go on (bad folder, diverged loss); the message says what to do."""


def mistyped(d: dict) -> list[str]:
    """Settings whose JSON type cannot stand for their field's (a string for a number, a number for a flag)."""
    kinds = {bool: bool, int: int, float: (int, float), str: str, tuple: (list, tuple), dict: dict}
    wrong = []
    for f in dataclasses.fields(TrainConfig):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        default = "" if default is dataclasses.MISSING else default  # data and out: strings
        if f.name not in d or f.name == "model" or type(default) not in kinds:  # model: a name or a config
            continue
        value = d[f.name]
        if not isinstance(value, kinds[type(default)]) or isinstance(value, bool) != isinstance(default, bool):
            wrong.append(f"{f.name}={value!r}")
    return wrong


def read_config_file(path: str | Path) -> dict:
    """Settings from a JSON file (`--config`, e.g. a run's config.json), checked: any problem is one line."""
    try:
        settings = json.loads(Path(path).read_text())
    except OSError as e:
        raise TrainingError(f"--config {path}: cannot read it ({e.strerror or e})") from None
    except ValueError as e:  # not JSON, or not UTF-8
        raise TrainingError(f"--config {path}: not valid JSON ({e})") from None
    if not isinstance(settings, dict):
        raise TrainingError(f"--config {path}: expected a JSON object of training settings, "
                            f"not a {type(settings).__name__}")
    try:
        TrainConfig.from_dict({"data": "", "out": "", **settings})
    except (ValueError, TypeError) as e:
        raise TrainingError(f"--config {path}: {e}") from None
    return settings


# ------------------------------------------------------------------------------------------- reporting
class Reporter(Protocol):
    def stage(self, name: str, total: int, start: int) -> None: ...
    def update(self, step: int, text: str) -> None: ...
    def info(self, text: str) -> None: ...
    def close(self) -> None: ...


class NullReporter:
    def stage(self, name: str, total: int, start: int) -> None: pass
    def update(self, step: int, text: str) -> None: pass
    def info(self, text: str) -> None: pass
    def close(self) -> None: pass


class RichReporter:
    """Stage, step/total, losses, images/s and ETA as a Rich progress bar."""

    def __init__(self, console=None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        self.progress = Progress(TextColumn("[bold]{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[text]}"), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=console, transient=False)
        self.progress.start()
        self.task = None

    def stage(self, name: str, total: int, start: int) -> None:
        self.task = self.progress.add_task(name, total=total, completed=start, text="")

    def update(self, step: int, text: str) -> None:
        self.progress.update(self.task, completed=step, text=text)

    def info(self, text: str) -> None:
        self.progress.console.print(text, highlight=False)

    def close(self) -> None:
        self.progress.stop()


# ------------------------------------------------------------------------------------------- processes
@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str, threads: int = 0) -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK: then join the group (NCCL on CUDA, gloo on CPU)."""
    from .engine import pick_device
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        dev = pick_device(device)
        if threads > 0:
            torch.set_num_threads(threads)
        return Dist(device=dev)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    else:  # processes share the cores
        share = (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(threads or max(1, share))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, dev)


def wrap_ddp(module: nn.Module, ctx: Dist) -> nn.Module:
    if ctx.world == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(module, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)


def all_finite(value: torch.Tensor, ctx: Dist) -> bool:
    """Every rank's loss is finite (all ranks must agree to stop together, or the others would hang)."""
    ok = torch.tensor([float(torch.isfinite(value).all())], device=ctx.device)
    if ctx.world > 1:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item())


# ------------------------------------------------------------------------------------------- state
@dataclass
class RunState:
    """What a checkpoint holds; everything else is rebuilt from the config."""
    generator: Generator
    ema: Generator | None
    critic: Critic
    g_opt: torch.optim.Optimizer | None = None
    c_opt: torch.optim.Optimizer | None = None
    scaler: torch.amp.GradScaler | None = None
    stage: str = "pretrain"
    step: int = 0  # steps done in `stage`
    done: tuple[str, ...] = ()  # finished stages
    best: float = math.inf  # best validation score so far
    best_at: str = ""

    def saved_generator(self) -> Generator:
        return self.ema if self.ema is not None else self.generator


def build_generator(cfg: TrainConfig) -> Generator:
    """A registered name or config (ImageNet encoder if cfg.pretrained), or a weights file to fine-tune."""
    if isinstance(cfg.model, ModelConfig) or cfg.model in MODELS:
        config = cfg.model if isinstance(cfg.model, ModelConfig) else MODELS[cfg.model]
        try:
            model = create_model(dataclasses.replace(config, hints=cfg.hints), pretrained_encoder=cfg.pretrained)
        except PretrainedWeightsError as e:
            raise TrainingError(str(e)) from None
    elif str(cfg.model).endswith(".safetensors"):
        model = fine_tune_start(Path(cfg.model), cfg.hints)
    else:
        raise TrainingError(f"unknown model {cfg.model!r}: use {', '.join(MODELS)} or a .safetensors file to fine-tune")
    return apply_spectral_norm(model) if model.config.spectral_norm else model


def fine_tune_start(path: Path, hints: bool = False) -> Generator:
    """The generator in a weights file, to fine-tune; a missing, foreign or mismatched file is a TrainingError.
    hints: give a model without hint inputs its (zero, so output-preserving) hint branch."""
    if not path.is_file():
        raise TrainingError(f"--model {path}: no such file")
    try:
        config, state, _ = read_weights(path)
        model = create_model(dataclasses.replace(config, hints=config.hints or hints))
    except (WeightsError, ValueError) as e:  # not a recolor weights file, or a config no model fits
        raise TrainingError(f"--model {path}: {str(e).removeprefix(f'{path}: ')}") from None
    if model.hints is not None and not config.hints:
        state = {**state, **{f"hints.{k}": v for k, v in model.hints.state_dict().items()}}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:  # tensors of other shapes or names than its own config's
        raise TrainingError(f"--model {path}: its weights do not fit the model its metadata describes "
                            f"({' '.join(str(e).split())[:300]})") from None
    return model


def new_state(cfg: TrainConfig, device: torch.device) -> RunState:
    generator = build_generator(cfg).to(device).train()
    ema = copy.deepcopy(generator).eval().requires_grad_(False) if cfg.ema > 0 else None
    critic = Critic(CriticConfig(nf=cfg.critic_width)).to(device).train()
    return RunState(generator, ema, critic)


def make_optimizers(state: RunState, cfg: TrainConfig, stage: str) -> None:
    """AdamW with encoder/decoder groups for pretraining; SAGAN's Adam(0, 0.9) pair for the GAN stages."""
    g = state.generator
    if stage == "pretrain":
        enc = list(g.encoder.parameters())
        ids = {id(p) for p in enc}
        rest = [p for p in g.parameters() if id(p) not in ids]
        mult = cfg.encoder_lr_mult if cfg.pretrained else 1.0
        state.g_opt = torch.optim.AdamW([{"params": rest, "lr_mult": 1.0}, {"params": enc, "lr_mult": mult}],
                                        lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        state.g_opt = torch.optim.Adam(g.parameters(), lr=cfg.gan_lr, betas=(0.0, 0.9))
    state.c_opt = torch.optim.Adam(state.critic.parameters(), lr=cfg.critic_lr, betas=(0.0, 0.9))


def checkpoint_dict(state: RunState, cfg: TrainConfig) -> dict:
    return {"config": cfg.to_dict(), "stage": state.stage, "step": state.step, "done": list(state.done),
            "best": state.best, "best_at": state.best_at, "generator": state.generator.state_dict(),
            "ema": state.ema.state_dict() if state.ema is not None else None,
            "critic": state.critic.state_dict(),
            "g_opt": state.g_opt.state_dict() if state.g_opt else None,
            "c_opt": state.c_opt.state_dict() if state.c_opt else None,
            "scaler": state.scaler.state_dict() if state.scaler else None,
            "torch_rng": torch.get_rng_state()}


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write to a temp file, fsync, rename: a kill at any moment leaves the previous checkpoint intact."""
    with replacing(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def restore(state: RunState, ckpt: dict, cfg: TrainConfig, weights_only: bool = False) -> None:
    """Load a checkpoint into a fresh state; `weights_only`: just the networks (to start a later stage)."""
    state.generator.load_state_dict(ckpt["generator"])
    if state.ema is not None:
        state.ema.load_state_dict(ckpt["ema"] if ckpt["ema"] is not None else ckpt["generator"])
    state.critic.load_state_dict(ckpt["critic"])
    state.done, state.best, state.best_at = tuple(ckpt["done"]), ckpt["best"], ckpt["best_at"]
    if weights_only:
        return
    state.stage, state.step = ckpt["stage"], ckpt["step"]
    make_optimizers(state, cfg, state.stage)
    if ckpt["g_opt"]:
        state.g_opt.load_state_dict(ckpt["g_opt"])
    if ckpt["c_opt"]:
        state.c_opt.load_state_dict(ckpt["c_opt"])
    # the config's learning rates, not the stored ones: a resume may change them (pretraining sets its lr
    # every step anyway)
    for group in state.c_opt.param_groups:
        group["lr"] = cfg.critic_lr
    if state.stage != "pretrain":
        for group in state.g_opt.param_groups:
            group["lr"] = cfg.gan_lr
    if ckpt["scaler"] and state.scaler is not None:
        state.scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["torch_rng"])


# ------------------------------------------------------------------------------------------- schedules
def stage_steps(cfg: TrainConfig, stage: str) -> int:
    return {"pretrain": cfg.pretrain_steps, "critic": cfg.critic_steps, "gan": cfg.gan_steps}[stage]


def size_at(cfg: TrainConfig, stage: str, step: int) -> int:
    """Progressive resizing in pretraining; the GAN stages train at gan_size."""
    if stage != "pretrain":
        return cfg.gan_size
    edge = 0.0
    for size, fraction in zip(cfg.sizes, cfg.size_fractions):
        edge += fraction * cfg.pretrain_steps
        if step < edge:
            return size
    return cfg.sizes[-1]


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """Linear warmup, then cosine decay to 2% of the peak over pretraining."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.pretrain_steps - cfg.warmup)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def encoder_frozen(cfg: TrainConfig, step: int) -> bool:
    return cfg.pretrained and step < cfg.freeze_fraction * cfg.pretrain_steps


@torch.no_grad()
def update_ema(ema: Generator | None, model: Generator, decay: float, step: int) -> None:
    """Polyak/EMA average of the parameters; a short warmup per stage so a new stage shows up quickly.
    Buffers (batch-norm statistics, spectral-norm vectors) are copied, not averaged."""
    if ema is None:
        return
    d = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1 - d)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


# ------------------------------------------------------------------------------------------- one step
@dataclass
class Step:
    """The per-run objects a training step needs."""
    cfg: TrainConfig
    ctx: Dist
    state: RunState
    g_net: nn.Module  # the generator, DDP-wrapped under torchrun
    c_net: nn.Module  # the critic, DDP-wrapped under torchrun
    features: FeatureLoss | None
    amp_dtype: torch.dtype | None

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.ctx.device.type, dtype=self.amp_dtype)

    def backward(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad(set_to_none=True)
        scaler = self.state.scaler
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    def reconstruction(self, l: torch.Tensor, ab: torch.Tensor, fake: torch.Tensor, logs: dict) -> torch.Tensor:
        """pixel_weight · smooth-L1(ab) + feature_weight · perceptual(RGB) + colour_weight · colourfulness."""
        cfg = self.cfg
        loss = cfg.pixel_weight * pixel_loss(fake, ab)
        logs["pixel"] = loss.detach()
        use_features = self.features is not None and cfg.feature_weight > 0
        if not use_features and cfg.colour_weight <= 0:
            return loss
        fake_rgb, true_rgb = lab_to_rgb(l, fake), lab_to_rgb(l, ab)
        if use_features:
            with self.autocast():
                feat = self.features(fake_rgb, true_rgb)
            logs["feature"] = feat.detach()
            loss = loss + cfg.feature_weight * feat
        if cfg.colour_weight > 0:
            colour = colourfulness_loss(fake_rgb, true_rgb)
            logs["colour"] = colour.detach()
            loss = loss + cfg.colour_weight * colour
        return loss

    def hint_planes(self, ab: torch.Tensor) -> torch.Tensor | None:
        """Hints drawn from this batch's true colours (hints.sample_hint_planes), seeded by (seed, stage, step,
        rank) so a resume draws the same; None for a generator without hint inputs. Zero planes for hint-free
        draws, never None, so DDP sees the hint branch used in every step."""
        if self.state.generator.hints is None:
            return None
        seed = (self.cfg.seed * 1_000_003 + SAMPLE_OFFSET[self.state.stage] + self.state.step) * 64 + self.ctx.rank
        generator = torch.Generator().manual_seed(seed % (1 << 63))
        return sample_hint_planes(ab, generator, self.cfg.hint_free)

    def pretrain(self, l_in, l, ab) -> dict:
        logs: dict = {}
        with self.autocast():
            fake = self.g_net(l_in, self.hint_planes(ab))
        loss = self.reconstruction(l, ab, fake.float(), logs)
        self.check(loss, "generator")
        self.backward(loss, self.state.g_opt)
        logs["loss"] = loss.detach()
        return logs

    def critic(self, l_in, l, ab) -> dict:
        """Critic pretraining: real vs the (fixed) generator's output."""
        with torch.no_grad(), self.autocast():
            fake = self.state.generator.eval()(l_in, self.hint_planes(ab)).float()
        loss = self.critic_update(l, ab, fake)
        return {"loss": loss, "critic": loss}

    def critic_update(self, l, ab, fake) -> torch.Tensor:
        with self.autocast():  # real and fake in one batch: one DDP forward per backward
            logits = self.c_net(torch.cat([l, l]), torch.cat([ab, fake.detach()]))
        real, fake_logits = logits.float().chunk(2)
        loss = critic_hinge_loss(real, fake_logits)
        self.check(loss, "critic")
        self.backward(loss, self.state.c_opt)
        return loss.detach()

    def gan(self, l_in, l, ab) -> dict:
        """One TTUR step: the critic on this batch's fakes, then the generator against the updated critic."""
        logs: dict = {}
        with self.autocast():
            fake = self.g_net(l_in, self.hint_planes(ab)).float()
        logs["critic"] = self.critic_update(l, ab, fake)
        critic = self.state.critic.requires_grad_(False)  # the plain module: its grads are not wanted here
        with self.autocast():
            adv = generator_hinge_loss(critic(l, fake))
        critic.requires_grad_(True)
        loss = self.reconstruction(l, ab, fake, logs) + self.cfg.adv_weight * adv
        logs["adv"] = adv.detach()
        self.check(loss, "generator")
        self.backward(loss, self.state.g_opt)
        logs["loss"] = loss.detach()
        return logs

    def check(self, loss: torch.Tensor, what: str) -> None:
        if not all_finite(loss.detach(), self.ctx):
            raise TrainingError(
                f"{what} loss became {loss.item()} at {self.state.stage} step {self.state.step + 1}; stopped. "
                f"The last good checkpoint is intact: resume with --resume after lowering the learning rate, "
                f"or turn AMP off (--no-amp)")


# ------------------------------------------------------------------------------------------- validation
def spread(paths: list[str], count: int) -> list[str]:
    """`count` paths evenly spaced through the sorted list, so every source (file-name prefix) is in the mix."""
    if len(paths) <= count:
        return list(paths)
    return [paths[round(i)] for i in np.linspace(0, len(paths) - 1, count)]


def val_score(delta_e: float, colourfulness: float, truth_colourfulness: float) -> float:
    """Mean ΔE2000, plus 0.2 ΔE per unit of colourfulness short of 80% of the ground truth's: ΔE alone
    rewards muddy, desaturated colour (the mean is the safest guess), so the score keeps the vivid model."""
    return delta_e + 0.2 * max(0.0, 0.8 * truth_colourfulness - colourfulness)


@torch.no_grad()
def validate(model: Generator, paths: list[str], device: torch.device, render_factor: int,
             samples: int) -> tuple[dict, list[tuple[np.ndarray, ...]]]:
    """-> (mean metrics, sample images). Whole photos through the engine, exactly as `recolor eval` scores
    them: 256 px centre crops ranked checkpoints differently from the product's own measure."""
    from .engine import Colorizer
    colorizer = Colorizer(copy.deepcopy(model), device)  # a copy: the engine switches it to channels_last
    shown = spread(paths, samples)  # scored first, so the sheet shows every source too
    ordered = shown + sorted(set(paths) - set(shown))
    result = evaluate_photos(colorizer, [Path(p) for p in ordered], render_factor, samples=samples, baseline=False)
    if not result.rows:
        raise TrainingError("no validation photo could be scored (all unreadable or gray)")
    mean = result.summary()
    summary = {**mean["model"], "truth_colourfulness": mean["truth"]["colourfulness"]}
    summary["score"] = val_score(summary["delta_e"], summary["colourfulness"], summary["truth_colourfulness"])
    return summary, result.samples


def sample_sheet(samples: list[tuple[np.ndarray, ...]], height: int = 256) -> np.ndarray:
    """Rows of gray | colorized | ground truth, each photo scaled to `height`, on white."""
    rows = []
    for images in samples:
        width = max(1, round(images[0].shape[1] * height / images[0].shape[0]))
        scaled = [cv2.resize(im, (width, height), interpolation=cv2.INTER_AREA) for im in images]
        gap = np.full((height, 4, 3), 255, np.uint8)
        rows.append(np.hstack([scaled[0], gap, scaled[1], gap, scaled[2]]))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.vstack(rows)


# ------------------------------------------------------------------------------------------- the run
@dataclass
class Run:
    """A run folder and the loop that fills it."""
    cfg: TrainConfig
    ctx: Dist
    out: Path
    reporter: Reporter
    train_paths: list[str]
    val: list[str]  # validation photos (empty: no validation)
    draw_p: np.ndarray | None = None  # per-photo draw probabilities (None: each photo once an epoch)

    def log(self, record: dict) -> None:
        if self.ctx.main:
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def write_state(self, state: RunState) -> None:
        if not self.ctx.main:
            return
        save_checkpoint(self.out / "last.ckpt", checkpoint_dict(state, self.cfg))
        save_weights(state.saved_generator(), self.out / "model.safetensors", info=self.weights_info(state))

    def weights_info(self, state: RunState, val: dict | None = None) -> dict:
        return {"stage": state.stage, "step": state.step, "done": list(state.done), "val": val or {},
                "train": json.loads(json.dumps(self.cfg.to_dict()))}

    def validate(self, state: RunState) -> None:
        if not self.ctx.main or not self.val:
            return
        summary, samples = validate(state.saved_generator(), self.val, self.ctx.device, self.cfg.val_render_factor,
                                    self.cfg.samples)
        tag = f"{state.stage}_{state.step:06d}"
        write_image(self.out / "samples" / f"{tag}.jpg", sample_sheet(samples), True)
        self.log({"stage": state.stage, "step": state.step, "val": {k: round(v, 4) for k, v in summary.items()}})
        if summary["score"] < state.best:
            state.best, state.best_at = summary["score"], tag
            save_weights(state.saved_generator(), self.out / "best.safetensors",
                         info=self.weights_info(state, summary))
        self.reporter.info(f"val {tag}: ΔE {summary['delta_e']:.2f}  PSNR {summary['psnr']:.2f}  colourfulness "
                           f"{summary['colourfulness']:.1f}/{summary['truth_colourfulness']:.1f}  score "
                           f"{summary['score']:.2f} (best {state.best:.2f} at {state.best_at})")

    def batches(self, stage: str, start: int) -> Iterator:
        total = stage_steps(self.cfg, stage)
        sampler = StepBatches(len(self.train_paths), self.cfg.batch_size, self.cfg.seed, range(start, total),
                              lambda s: size_at(self.cfg, stage, s), SAMPLE_OFFSET[stage], self.ctx.rank,
                              self.ctx.world, self.draw_p)
        dataset = ColorPhotos(self.train_paths, self.cfg.seed, augment=True, noise=self.cfg.noise,
                              zoom=self.cfg.zoom)
        workers = self.cfg.workers if self.cfg.workers >= 0 else min(8, (os.cpu_count() or 2) // 2)
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                             pin_memory=self.ctx.device.type == "cuda",
                                             prefetch_factor=4 if workers else None)
        for l_in, l, ab in loader:
            yield (t.to(self.ctx.device, non_blocking=True) for t in (l_in, l, ab))

    def run_stage(self, state: RunState, stage: str, features: FeatureLoss | None, amp_dtype) -> None:
        if state.stage != stage or state.g_opt is None:  # a fresh stage (a resume keeps its optimizers)
            state.stage, state.step = stage, 0
            make_optimizers(state, self.cfg, stage)
            if stage != "pretrain" and state.ema is not None:
                state.generator.load_state_dict(state.ema.state_dict())  # adversarial stages start from the average
        total = stage_steps(self.cfg, stage)
        self.reporter.stage(stage, total, state.step)
        runner, frozen = None, None
        window = {"t": time.perf_counter(), "n": 0, "sums": {}, "steps": 0}
        for l_in, l, ab in self.batches(stage, state.step):
            want = stage == "pretrain" and encoder_frozen(self.cfg, state.step)
            if runner is None or want != frozen:  # requires_grad changes need a fresh DDP wrapper
                frozen = want
                state.generator.encoder.requires_grad_(not frozen)
                runner = self.step_runner(state, features, amp_dtype)
            self.set_lr(state, stage)
            logs = getattr(runner, stage)(l_in, l, ab)
            state.step += 1
            if stage != "critic":
                update_ema(state.ema, state.generator, self.cfg.ema, state.step)
            self.after_step(state, stage, total, logs, window, len(l_in) * self.ctx.world)
        state.generator.encoder.requires_grad_(True)
        state.generator.train()
        state.done = tuple(dict.fromkeys((*state.done, stage)))
        self.write_state(state)

    def step_runner(self, state: RunState, features, amp_dtype) -> Step:
        return Step(self.cfg, self.ctx, state, wrap_ddp(state.generator.train(), self.ctx),
                    wrap_ddp(state.critic, self.ctx), features, amp_dtype)

    def set_lr(self, state: RunState, stage: str) -> None:
        if stage == "pretrain":
            for group in state.g_opt.param_groups:
                group["lr"] = self.cfg.lr * group["lr_mult"] * lr_factor(self.cfg, state.step)

    def after_step(self, state, stage, total, logs, window, images) -> None:
        window["n"] += images
        for k, v in logs.items():
            window["sums"][k] = window["sums"].get(k, 0.0) + v.detach()  # tensors: no GPU sync per step
        window["steps"] += 1
        last = state.step == total
        if state.step % self.cfg.log_every == 0 or last:
            rate = window["n"] / max(1e-9, time.perf_counter() - window["t"])
            means = {k: round(float(v) / window["steps"], 5) for k, v in window["sums"].items()}
            self.log({"stage": stage, "step": state.step, **means, "img_per_s": round(rate, 2),
                      "size": size_at(self.cfg, stage, state.step - 1), "time": round(time.time(), 1)})
            self.reporter.update(state.step, "  ".join(f"{k} {v:.4f}" for k, v in means.items()) +
                                 f"  {rate:.1f} img/s")
            window.update(t=time.perf_counter(), n=0, sums={}, steps=0)
        if stage != "critic" and (state.step % self.cfg.val_every == 0 or last):
            self.validate(state)
        if state.step % self.cfg.save_every == 0 and not last:
            self.write_state(state)


# ------------------------------------------------------------------------------------------- entry point
def amp_dtype_for(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 where the hardware has it (CPUs with AVX-512 BF16/AMX: 1.7× here; without, it is emulated and
    slower than fp32), fp16 on older GPUs (with a GradScaler), none on MPS."""
    if not cfg.amp or device.type == "mps":
        return None
    if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def photo_index(cfg: TrainConfig, ctx: Dist, out: Path, resume: bool) -> tuple[list[str], list[str], PhotoIndex]:
    """Scan the folders once (or reuse the run's data.json on resume): (train files, val files, index)."""
    saved = out / "data.json"
    if resume and saved.exists():
        d = json.loads(saved.read_text())
        return d["train"], d["val"], PhotoIndex(d["train"] + d["val"], d["gray"], d["unreadable"])
    root = Path(cfg.data)
    if not root.is_dir():
        raise TrainingError(f"--data {cfg.data}: not a folder")
    index = scan_photos(find_images(root))
    if not index.photos:
        raise TrainingError(f"--data {cfg.data}: no usable colour photos ({index.summary()})")
    if cfg.val:
        if not Path(cfg.val).is_dir():
            raise TrainingError(f"--val {cfg.val}: not a folder")
        train_paths, val_paths = index.photos, scan_photos(find_images(Path(cfg.val))).photos
    else:
        train_paths, val_paths = split_val(index.photos, cfg.val_fraction, cfg.seed, cfg.val_max)
    if ctx.main:
        saved.write_text(json.dumps({"train": train_paths, "val": val_paths, "gray": index.gray,
                                     "unreadable": index.unreadable}, indent=1))
    return train_paths, val_paths, index


def prepare_state(cfg: TrainConfig, ctx: Dist, out: Path, resume: bool) -> RunState:
    """A fresh state, a resumed one, or (for a later stage in an existing run) the networks of the last one."""
    ckpt_path = out / "last.ckpt"
    state = new_state(cfg, ctx.device)
    if cfg.amp and ctx.device.type == "cuda" and not torch.cuda.is_bf16_supported():
        state.scaler = torch.amp.GradScaler("cuda")
    if resume:
        restore(state, load_checkpoint(ckpt_path), cfg)
    elif ckpt_path.exists():
        if cfg.stage in ("all", "pretrain"):
            raise TrainingError(f"{out} already holds a run: continue it with --resume, or use a new --out")
        restore(state, load_checkpoint(ckpt_path), cfg, weights_only=True)
    elif cfg.stage in ("critic", "gan"):
        raise TrainingError(f"--stage {cfg.stage} builds on a pretrained generator: run --stage pretrain "
                            f"with --out {out} first")
    return state


def resume_config(cfg: TrainConfig, given: Iterable[str] | None = None) -> tuple[TrainConfig, dict]:
    """The config a resume continues with: the run's stored one, where it executes (RUNTIME) from `cfg`, and the
    settings named in `given` (default: those of `cfg` not at their default value) that differ from the run's.
    Those in RESUMABLE are applied; any other is refused, since training on silently with a setting other than
    the one asked for is worse than stopping. -> (config, {setting: (stored value, new value)})."""
    path = Path(cfg.out) / "last.ckpt"
    if not path.exists():
        raise TrainingError(f"--resume: no checkpoint at {path}")
    stored = TrainConfig.from_dict({"hints": False, **load_checkpoint(path)["config"]})  # runs from before hints
    defaults = TrainConfig(data="", out="")
    names = [f.name for f in dataclasses.fields(cfg) if f.name not in RUNTIME]
    if given is None:
        given = [k for k in names if getattr(cfg, k) != getattr(defaults, k)]
    changes = {k: (getattr(stored, k), getattr(cfg, k)) for k in names
               if k in given and getattr(cfg, k) != getattr(stored, k)}
    refused = [f"{k} (the run has {old!r}, asked {new!r})" for k, (old, new) in changes.items() if k not in RESUMABLE]
    if refused:
        raise TrainingError(f"--resume continues a run as it was set up; it cannot change {'; '.join(refused)}. "
                            f"Only {', '.join(sorted(RESUMABLE))} can change on resume; for anything else start "
                            f"a new run (another --out)")
    runtime = {k: getattr(cfg, k) for k in RUNTIME}
    return dataclasses.replace(stored, **runtime, **{k: new for k, (_, new) in changes.items()}), changes


def train(cfg: TrainConfig, resume: bool = False, reporter: Reporter | None = None,
          given: Iterable[str] | None = None) -> Path:
    """Run (or resume) the stages of `cfg`; returns the run folder. Raises TrainingError with a clear message.
    `given`: on resume, the settings the caller chose to change (see resume_config)."""
    reporter = reporter or NullReporter()
    ctx, ok = Dist(), False
    try:
        cfg, changes = resume_config(cfg, given) if resume else (cfg, {})
        cfg = cfg.check()
        ctx = setup_distributed(cfg.device, cfg.threads)
        out = run_stages(cfg, ctx, resume, reporter if ctx.main else NullReporter(), changes)
        ok = True
    finally:
        reporter.close()
        end_distributed(ctx, ok)
    return out


def run_stages(cfg: TrainConfig, ctx: Dist, resume: bool, reporter: Reporter, changes: dict) -> Path:
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    state = prepare_state(cfg, ctx, out, resume)  # first: a run that cannot start leaves no folder behind
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
    train_paths, val_paths, index = photo_index(cfg, ctx, out, resume)
    if ctx.main:
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        if resume:
            trim_metrics(out / "metrics.jsonl", state)
    if changes:
        reporter.info("resumed with " + ", ".join(f"{k} {old} → {new}" for k, (old, new) in changes.items()))
    reporter.info(f"data: {index.summary()}; {len(train_paths)} train, {len(val_paths)} val")
    draw_p = source_draws(train_paths, cfg.source_weights, reporter)
    amp_dtype = amp_dtype_for(cfg, ctx.device)
    features = make_feature_loss(cfg, ctx.device, reporter)
    run = Run(cfg, ctx, out, reporter, train_paths, spread(val_paths, cfg.val_max), draw_p)
    for stage in (STAGES if cfg.stage == "all" else (cfg.stage,)):
        if resume and STAGES.index(stage) < STAGES.index(state.stage):
            continue
        run.run_stage(state, stage, features, amp_dtype)
    return out


def end_distributed(ctx: Dist, ok: bool) -> None:
    """Leave the process group. Only after success do the ranks wait for each other: a rank that failed must
    not sit in a barrier while the others sit in a collective waiting for it (all would hang until the
    timeout); it leaves at once, and torchrun then stops the others."""
    if ctx.world > 1 and dist.is_initialized():
        if ok:
            dist.barrier()
        dist.destroy_process_group()


def source_draws(paths: list[str], weights: dict[str, float], reporter: Reporter) -> np.ndarray | None:
    """Draw probabilities for `source_weights`, and the share of the draws each source then gets."""
    try:
        p = draw_probabilities(paths, weights)
    except ValueError as e:
        raise TrainingError(f"--source-weight: {e}") from None
    if p is not None:
        shares: dict[str, float] = defaultdict(float)
        for path, q in zip(paths, p):
            shares[source_of(path)] += q
        reporter.info("draws per source: " + ", ".join(f"{s} {100 * q:.0f}%" for s, q in sorted(shares.items())))
    return p


def make_feature_loss(cfg: TrainConfig, device: torch.device, reporter: Reporter) -> FeatureLoss | None:
    if cfg.perceptual == "none" or cfg.feature_weight == 0:
        return None
    if not cfg.pretrained:
        reporter.info("note: --no-pretrained: the perceptual network has random weights (for tests only)")
    with torch.random.fork_rng(devices=[]):  # its own seed: a resumed run must build the very same network
        torch.manual_seed(cfg.seed + 1)
        try:
            return FeatureLoss(cfg.perceptual, pretrained=cfg.pretrained).to(device)
        except PerceptualWeightsError as e:
            raise TrainingError(str(e)) from None


def trim_metrics(path: Path, state: RunState) -> None:
    """Drop log lines written after the checkpoint we resume from: they will be written again."""
    if not path.exists():
        return
    here = (STAGES.index(state.stage), state.step)
    keep = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
            at = (STAGES.index(rec["stage"]), rec["step"])
        except (ValueError, KeyError, TypeError):  # a line torn by a kill mid-write: it is written again
            continue
        if at <= here:
            keep.append(line)
    path.write_text("".join(k + "\n" for k in keep))
