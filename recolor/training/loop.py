"""The run loop: `train` sets a run up (bootstrap.py) and runs its stages in order; `Run.run_stage` feeds
batches to the stage's step (steps.py), keeps the weight average, and at their intervals logs, validates and
checkpoints. The data order and augmentation are a pure function of (seed, step) (`data.StepBatches`), so a
run killed at any moment and resumed ends with the same weights as an uninterrupted one. Only rank 0 writes
files or prints."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from ..ab_classes import rebalancing_weights
from ..images import write_image
from ..weights import save_weights
from .bootstrap import amp_dtype_for, make_feature_loss, photo_index, prepare_state, resume_config, source_draws
from .checkpoint import checkpoint_dict, save_checkpoint, trim_metrics
from .config import SAMPLE_OFFSET, STAGES, TrainConfig
from .data import ColorPhotos, StepBatches, bin_counts
from .distributed import Dist, end_distributed, setup_distributed, wrap_ddp
from .losses import FeatureLoss
from .reporting import LogWindow, NullReporter, Reporter
from .schedule import encoder_frozen, lr_factor, size_at, stage_steps, trains_generator, update_ema
from .state import RunState, make_optimizers
from .steps import STAGE_STEP, Step
from .validation import sample_sheet, spread, validate


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
    features: FeatureLoss | None = None  # the perceptual loss (None: off)
    amp_dtype: torch.dtype | None = None  # autocast type (None: fp32)
    class_weights: torch.Tensor | None = None  # rebalancing of a colour_classes generator's bins

    def run_stage(self, state: RunState, stage: str) -> None:
        """Train `stage` from where `state` stands to its last step; the stage then counts as done."""
        if state.stage != stage or state.g_opt is None:  # a fresh stage (a resume keeps its optimizers)
            state.stage, state.step = stage, 0
            make_optimizers(state, self.cfg, stage)
            if stage != "pretrain" and state.ema is not None:
                state.generator.load_state_dict(state.ema.state_dict())  # adversarial stages start from the average
        total = stage_steps(self.cfg, stage)
        self.reporter.stage(stage, total, state.step)
        take_step = STAGE_STEP[stage]
        runner: Step | None = None  # the networks as this step trains them (DDP-wrapped under torchrun)
        window = LogWindow()
        for l_in, l, ab in self.batches(stage, state.step):
            runner = self.step_runner(runner, state, stage)
            self.set_lr(state, stage)
            logs = take_step(runner, l_in, l, ab)
            state.step += 1
            if trains_generator(stage):
                update_ema(state.ema, state.generator, self.cfg.ema, state.step)
            window.add(logs, len(l_in) * self.ctx.world)
            self.after_step(state, stage, total, window)
        state.generator.encoder.requires_grad_(True)
        state.generator.train()
        state.done = tuple(dict.fromkeys((*state.done, stage)))
        self.write_state(state)

    def batches(self, stage: str, start: int) -> Iterator:
        total = stage_steps(self.cfg, stage)
        sampler = StepBatches(len(self.train_paths), self.cfg.batch_size, self.cfg.seed, range(start, total),
                              lambda s: size_at(self.cfg, stage, s), SAMPLE_OFFSET[stage], self.ctx.rank,
                              self.ctx.world, self.draw_p)
        dataset = ColorPhotos(self.train_paths, self.cfg.seed, augment=True, noise=self.cfg.noise,
                              zoom=self.cfg.zoom, fade=self.cfg.fade)
        workers = self.cfg.workers if self.cfg.workers >= 0 else min(8, (os.cpu_count() or 2) // 2)
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                             pin_memory=self.ctx.device.type == "cuda",
                                             prefetch_factor=4 if workers else None)
        for l_in, l, ab in loader:
            yield (t.to(self.ctx.device, non_blocking=True) for t in (l_in, l, ab))

    def step_runner(self, last: Step | None, state: RunState, stage: str) -> Step:
        """The Step for the next step: the last one, or a new one when the encoder freezes or thaws, since
        requires_grad changes need a fresh DDP wrapper."""
        frozen = stage == "pretrain" and encoder_frozen(self.cfg, state.step)
        if last is not None and last.frozen_encoder == frozen:
            return last
        state.generator.encoder.requires_grad_(not frozen)
        return Step(self.cfg, self.ctx, state, wrap_ddp(state.generator.train(), self.ctx),
                    wrap_ddp(state.critic, self.ctx), self.features, self.amp_dtype, frozen, self.class_weights)

    def set_lr(self, state: RunState, stage: str) -> None:
        if stage == "pretrain":
            for group in state.g_opt.param_groups:
                group["lr"] = self.cfg.lr * group["lr_mult"] * lr_factor(self.cfg, state.step)

    def after_step(self, state: RunState, stage: str, total: int, window: LogWindow) -> None:
        """At their intervals (and at the stage's end): a log line, a validation, a checkpoint."""
        last = state.step == total
        if state.step % self.cfg.log_every == 0 or last:
            means, rate = window.take()
            self.log({"stage": stage, "step": state.step, **means, "img_per_s": round(rate, 2),
                      "size": size_at(self.cfg, stage, state.step - 1), "time": round(time.time(), 1)})
            self.reporter.update(state.step, "  ".join(f"{k} {v:.4f}" for k, v in means.items()) +
                                 f"  {rate:.1f} img/s")
        if trains_generator(stage) and (state.step % self.cfg.val_every == 0 or last):
            self.validate(state)
        if state.step % self.cfg.save_every == 0 and not last:
            self.write_state(state)

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
        """Score the saved generator, write its sample sheet, and keep it as best.safetensors if it is."""
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


def class_weights(state: RunState, paths: list[str], cfg: TrainConfig) -> torch.Tensor | None:
    """The rebalancing weights of a colour_classes generator's bins, from its training photos' colours."""
    if not state.generator.config.colour_classes:
        return None
    counts = bin_counts(paths, state.generator.classes.centres.cpu(), cfg.seed)
    return rebalancing_weights(counts, cfg.rebalance).to(state.generator.classes.centres.device)


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
    run = Run(cfg, ctx, out, reporter, train_paths, spread(val_paths, cfg.val_max), draw_p, features, amp_dtype,
              class_weights(state, train_paths, cfg))
    for stage in (STAGES if cfg.stage == "all" else (cfg.stage,)):
        if resume and STAGES.index(stage) < STAGES.index(state.stage):
            continue
        run.run_stage(state, stage)
    return out
