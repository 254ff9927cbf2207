"""Training speed of the default recipe on this machine: images/s per phase at 128 and 256 px.

Times the real training step (`recolor.training.steps.Step`: generator, perceptual loss, critic, optimizers, AMP as
configured) on batches of real photo crops held in memory, so the figure is compute throughput; data loading
runs in worker processes beside it. Phases: pretraining with the encoder frozen, pretraining, critic
pretraining and the adversarial (GAN) step. Also estimates the wall time of one full default run.

    .venv/bin/python research/train_speed.py [--sizes 128 256] [--steps 5] [--no-amp]

Writes benchmarks/results/train_speed.json and .md and prints the table. Random weights are used (speed does
not depend on them), so it runs without any pretrained file.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, machine, val_photos  # noqa: E402

PHASES = ("pretrain (encoder frozen)", "pretrain", "critic", "gan")


def batch(photos: list[np.ndarray], size: int, n: int, seed: int):
    """n random crops of real photos -> (L_in, L, ab) tensors, as the data loader makes them."""
    import torch
    from recolor.training.data import random_crop, to_l_ab
    rng = np.random.default_rng(seed)
    l, ab = zip(*[to_l_ab(random_crop(photos[i % len(photos)].astype(np.float32) / 255, size, rng)) for i in range(n)])
    l, ab = torch.from_numpy(np.stack(l)), torch.from_numpy(np.stack(ab))
    return l, l, ab


def time_phase(phase: str, size: int, args, photos) -> float:
    """Images per second of one phase at one crop size: median step time after 2 warm-up steps."""
    import torch
    from recolor.training import NullReporter, TrainConfig
    from recolor.training.bootstrap import amp_dtype_for, make_feature_loss
    from recolor.training.distributed import Dist
    from recolor.training.state import make_optimizers, new_state
    from recolor.training.steps import Step
    cfg = TrainConfig(data="", out="", pretrained=False, amp=args.amp, batch_size=args.batch_size)
    ctx = Dist(device=torch.device("cpu"))
    state = new_state(cfg, ctx.device)
    stage = phase.split()[0]
    make_optimizers(state, cfg, stage)
    state.stage = stage
    state.generator.encoder.requires_grad_(phase != "pretrain (encoder frozen)")
    step = Step(cfg, ctx, state, state.generator.train(), state.critic, make_feature_loss(cfg, ctx.device, NullReporter()),
                amp_dtype_for(cfg, ctx.device))
    data = batch(photos, size, args.batch_size, seed=size)
    for _ in range(2):
        getattr(step, stage)(*data)
    times = []
    for _ in range(args.steps):  # the median step: robust to bursts from other processes on a shared machine
        t = time.perf_counter()
        getattr(step, stage)(*data)
        times.append(time.perf_counter() - t)
    return args.batch_size / float(np.median(times))


def default_run_hours(rates: dict) -> float:
    """Wall time of one full default run from the measured rates (sizes between 128 and 256 interpolated
    by pixel count: compute grows with area)."""
    from recolor.training import TrainConfig
    from recolor.training.schedule import encoder_frozen, size_at
    cfg = TrainConfig(data="", out="")
    sizes = sorted(rates)

    def rate(phase: str, size: int) -> float:
        per_px = np.interp(size * size, [s * s for s in sizes], [1 / rates[s][phase] / (s * s) for s in sizes])
        return 1 / (per_px * size * size)

    seconds = 0.0
    for s in range(cfg.pretrain_steps):
        phase = "pretrain (encoder frozen)" if encoder_frozen(cfg, s) else "pretrain"
        seconds += cfg.batch_size / rate(phase, size_at(cfg, "pretrain", s))
    seconds += cfg.critic_steps * cfg.batch_size / rate("critic", cfg.gan_size)
    seconds += cfg.gan_steps * cfg.batch_size / rate("gan", cfg.gan_size)
    return seconds / 3600


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--no-amp", dest="amp", action="store_false")
    args = p.parse_args()
    import torch
    from recolor.runners import pick_device
    pick_device("cpu")  # all cores, as `recolor train` uses them
    photos = val_photos(16)
    rates = {}
    for size in args.sizes:
        rates[size] = {}
        for phase in PHASES:
            rates[size][phase] = time_phase(phase, size, args, photos)
            print(f"{size}² {phase}: {rates[size][phase]:.1f} img/s", file=sys.stderr, flush=True)
    precision = "bf16 autocast" if args.amp else "fp32"
    lines = [f"# Training speed, recolor-small, batch {args.batch_size}, {precision}, {torch.get_num_threads()} threads",
             "", f"Machine: {machine()}", "", "| crop | " + " | ".join(PHASES) + " |",
             "|---|" + "---|" * len(PHASES)]
    for size, r in rates.items():
        lines.append(f"| {size}² | " + " | ".join(f"{r[ph]:.1f} img/s" for ph in PHASES) + " |")
    if {128, 256} <= set(rates) and args.batch_size == 16:
        lines += ["", f"One full default run (pretrain 3000 steps 128→192→256, critic 300, GAN 600 at 192): "
                      f"≈ {default_run_hours(rates):.1f} h at these rates."]
    report = "\n".join(lines)
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train_speed.md").write_text(report + "\n")
    (RESULTS / "train_speed.json").write_text(json.dumps(
        {"machine": machine(), "batch_size": args.batch_size, "precision": precision, "steps": args.steps,
         "img_per_s": {str(k): v for k, v in rates.items()}}, indent=2))


if __name__ == "__main__":
    main()
