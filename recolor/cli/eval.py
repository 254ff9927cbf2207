"""`recolor eval`: score a model on colour photos in the numbers the literature quotes (see recolor/evaluate.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from ..defaults import PHOTO_RENDER_FACTOR
from .app import app, console, fail
from .options import DeviceOpt, ModelOpt, render_factor_option


@app.command("eval")
def eval_command(
    data: Annotated[Path, typer.Option("--data", help="Folder of colour photos to desaturate and colorize.")],
    model: ModelOpt = "default",
    render_factor: Annotated[int, render_factor_option()] = PHOTO_RENDER_FACTOR,
    json_out: Annotated[Optional[Path], typer.Option(
        "--json", help="Also write every number (per photo too) here.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Only the first N photos.")] = None,
    device: DeviceOpt = "auto",
    hints: Annotated[Optional[list[int]], typer.Option("--hints", min=0, help=(
        "Also score with N hints simulated from each photo's true colours (repeatable: a curve)."))] = None,
) -> None:
    """Score a model on colour photos: ΔE2000, PSNR, SSIM, colourfulness, against the a=b=0 baseline."""
    from ..evaluate import EvalConfig, check_json_path, eval_paths, evaluate, write_json
    from ..weights import WeightsError
    from .report import eval_progress, eval_tables
    cfg = EvalConfig(str(data), model, render_factor, limit, device, hints=tuple(sorted(set(hints or ()))))
    try:
        if json_out:
            check_json_path(json_out)
        with eval_progress(console, len(eval_paths(cfg))) as on_photo:
            result = evaluate(cfg, on_photo)
    except (WeightsError, ValueError) as e:
        fail(str(e).splitlines()[0])
    if not result.rows:
        fail(f"no colour photos could be scored ({len(result.skipped)} skipped)", 1)
    for table in eval_tables(result):
        Console().print(table)
    locality = result.locality()
    if locality:
        far, spot = locality["far"], locality["spot"]
        Console().print(f"one wrong-colour hint at the centre (median over photos): mean |Δab| {far:.2f} farther "
                        f"than half the short side; the 9×9 patch at it moved {spot:.0%} of the way", soft_wrap=True)
    if result.skipped:
        shown = "; ".join(f"{Path(f).name} ({w})" for f, w in result.skipped[:5])
        console.print(escape(f"skipped {len(result.skipped)}: {shown}"), soft_wrap=True)
    if json_out:
        try:
            write_json(result, cfg, json_out)
        except ValueError as e:
            fail(str(e), 1)
