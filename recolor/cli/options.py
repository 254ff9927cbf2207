"""The options more than one command takes, defined once, so their flags, limits and help cannot drift apart:
a command's signature reads `model: ModelOpt = "default"` or `render_factor: RenderFactorOpt = PHOTO_RENDER_FACTOR`.
Where commands share a flag but describe it in their own words (images or frames per call), a small function
makes the option from that help text."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..defaults import RENDER_FACTOR_MAX, RENDER_FACTOR_MIN


def render_factor_option(help: Optional[str] = None):
    return typer.Option("--render-factor", "-r", min=RENDER_FACTOR_MIN, max=RENDER_FACTOR_MAX, help=help)


def batch_size_option(help: str):
    return typer.Option("--batch-size", "-b", min=1, help=help)


def overwrite_option(help: str):
    return typer.Option("--overwrite", help=help)


ModelOpt = Annotated[str, typer.Option(
    "--model", "-m", help="default, a .safetensors file, or owner/repo[@rev] on the Hub.")]
DeviceOpt = Annotated[str, typer.Option("--device", "-d", help="auto (cuda > mps > cpu), cpu, cuda, cuda:N, mps.")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="auto, fp32, fp16 or bf16 (autocast).")]
RuntimeOpt = Annotated[str, typer.Option(
    "--runtime", help="auto (ONNX Runtime on the CPU, no torch start-up; torch on GPUs), onnx or torch.")]
RenderFactorOpt = Annotated[int, render_factor_option("Render size = factor × 16 px.")]
