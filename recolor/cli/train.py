"""`recolor train`: train a colorizer on a folder of colour photos; resumable, DDP under torchrun."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from .app import app, console, fail, require_extra
from .options import DeviceOpt, batch_size_option


@app.command("train")
def train_command(
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Run folder: checkpoints, logs, samples, model.safetensors.")],
    data: Annotated[Optional[Path], typer.Option("--data", help="Folder of colour photos (recursive).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help=(
        "Continue the run in --out exactly where it stopped, with its stored settings. Given with it, --lr, "
        "--pretrain-steps, --critic-steps, --gan-steps and --amp/--no-amp change the run (so do critic_lr, gan_lr "
        "and log/val/save_every in --config); any other setting that differs from the run's is refused."))] = False,
    stage: Annotated[Optional[str], typer.Option("--stage", help="pretrain, critic, gan or all.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help=(
        "A registered architecture or a .safetensors to fine-tune (default: the shipped model's kind, "
        "configs/recolor-small-pretrain.json)."))] = None,
    val: Annotated[Optional[Path], typer.Option(
        "--val", help="Validation photos (default: a fixed hold-out of --data).")] = None,
    pretrain_steps: Annotated[Optional[int], typer.Option("--pretrain-steps", min=0)] = None,
    critic_steps: Annotated[Optional[int], typer.Option("--critic-steps", min=0)] = None,
    gan_steps: Annotated[Optional[int], typer.Option("--gan-steps", min=0)] = None,
    batch_size: Annotated[Optional[int], batch_size_option("Per process.")] = None,
    lr: Annotated[Optional[float], typer.Option(
        "--lr", min=0.0, help="Generator learning rate in pretraining.")] = None,
    zoom: Annotated[Optional[float], typer.Option(
        "--zoom", min=1.0, help="Crops come from the photo scaled up to this many times the crop size.")] = None,
    colour_weight: Annotated[Optional[float], typer.Option(
        "--colour-weight", min=0.0, help="Weight of the colourfulness-matching loss (0: off).")] = None,
    source_weight: Annotated[Optional[list[str]], typer.Option("--source-weight", help=(
        "SOURCE=W: draw photos named SOURCE_* W times as often (repeatable; others 1)."))] = None,
    perceptual: Annotated[Optional[str], typer.Option("--perceptual", help="mobilenet_v2, vgg16_bn or none.")] = None,
    pretrained: Annotated[Optional[bool], typer.Option(
        "--pretrained/--no-pretrained", help="ImageNet weights for encoder and perceptual net.")] = None,
    amp: Annotated[Optional[bool], typer.Option("--amp/--no-amp", help="bf16/fp16 autocast.")] = None,
    classes: Annotated[Optional[bool], typer.Option("--classes/--no-classes", help=(
        "Predict colour as a distribution over a/b bins (Zhang et al. 2016; the default, as the shipped model) or "
        "regress it; fine-tuning a regression model with --classes converts it."))] = None,
    seed: Annotated[Optional[int], typer.Option("--seed")] = None,
    device: DeviceOpt = "auto",
    workers: Annotated[Optional[int], typer.Option(
        "--workers", "-j", help="Data-loader processes (-1, the default: half the cores).")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="CPU threads (0, the default: all cores).")] = None,
    config: Annotated[Optional[Path], typer.Option(
        "--config", help="Start from the settings in this JSON (configs/*.json, a run's config.json); options given "
        "here override it.")] = None,
) -> None:
    """Train a colorizer on your photos (pretrain → critic → GAN); resumable, DDP under torchrun."""
    require_extra("train", "torch", "torchvision")
    from ..training import TrainConfig, TrainingError, read_config_file, train
    from .report import RichReporter
    options = {"data": data and str(data), "stage": stage, "model": model, "val": val and str(val), "seed": seed,
               "pretrain_steps": pretrain_steps, "critic_steps": critic_steps, "gan_steps": gan_steps,
               "batch_size": batch_size, "lr": lr, "zoom": zoom, "colour_weight": colour_weight,
               "perceptual": perceptual, "pretrained": pretrained, "amp": amp,
               "colour_classes": classes, "source_weights": source_weight and parse_weights(source_weight),
               "workers": workers, "threads": threads}
    given = {k: v for k, v in options.items() if v is not None}
    try:
        base = read_config_file(config) if config else {}
    except TrainingError as e:
        fail(str(e))
    settings = {**base, **given, "out": str(out), "device": device}
    if not settings.get("data") and not resume:
        fail("--data is required (except with --resume)")
    try:  # on resume, what was given (options and --config) is what may change the run: see train.resume_config
        run = train(TrainConfig.from_dict({"data": "", **settings}), resume, RichReporter(console), {*base, *given})
    except (TrainingError, ValueError, OSError) as e:
        fail(str(e))
    if os.environ.get("RANK", "0") == "0":
        console.print(escape(f"done: {run / 'model.safetensors'} (latest), {run / 'best.safetensors'} (best on val)"),
                      soft_wrap=True)


def parse_weights(items: list[str]) -> dict[str, float]:
    """["utkface=0.5", ...] -> {"utkface": 0.5}; a malformed item is a one-line error (the values are
    checked with the other settings, in TrainConfig.check)."""
    weights = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = None
        if not name.strip() or weight is None:
            fail(f"--source-weight {item!r}: expected SOURCE=WEIGHT, e.g. utkface=0.5")
        weights[name.strip()] = weight
    return weights
