"""Colorizing files: where each output goes, and a batch that goes on past bad files.

Rules (documented in the README):
- without -o, `<stem>_color<ext>` beside each input; with -o DIR, the inputs' relative paths mirrored under DIR
  (same names); with -o FILE.ext and a single input, exactly that file;
- `--compare` also writes `<name>_compare<ext>`, a before|after sheet, beside each output;
- an input is never overwritten, an existing output only with --overwrite, every write is atomic;
- scanning a folder skips hidden files and recolor's own outputs (`*_color.*`, `*_compare.*`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .defaults import BATCH_SIZE, COMPARE_SUFFIX, MAX_PIXELS, OUTPUT_SUFFIX
from .hints import Guide
from .images import IMAGE_EXTENSIONS, ImageError, comparison_sheet, find_images, read_image, write_image


@dataclass(frozen=True)
class Job:
    source: Path
    output: Path
    compare: Path | None = None


@dataclass
class Outcome:
    job: Job
    error: str | None = None
    seconds: float = 0.0


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    errors: list[tuple[Path, str]] = field(default_factory=list)  # inputs that could not even be planned


def _is_own_output(path: Path) -> bool:
    return path.stem.endswith((OUTPUT_SUFFIX, COMPARE_SUFFIX))


def _compare_path(output: Path) -> Path:
    return output.with_name(output.stem + COMPARE_SUFFIX + output.suffix)


def plan_jobs(inputs: Iterable[str | Path], out: Path | None = None, compare: bool = False) -> Plan:
    """Expand files and folders into jobs; nothing is read or written here."""
    plan = Plan()
    inputs = [Path(p) for p in inputs]
    out_is_file = out is not None and out.suffix.lower() in IMAGE_EXTENSIONS and not out.is_dir()
    if out_is_file and (len(inputs) != 1 or inputs[0].is_dir()):
        plan.errors.append((out, "-o names a file, which needs exactly one input file (use a folder for many)"))
        return plan
    for root in inputs:
        if root.is_dir():
            # an -o folder inside the input folder holds earlier outputs, not inputs
            nested_out = out is not None and root.resolve() in out.resolve().parents
            sources = [p for p in find_images(root) if not _is_own_output(p)
                       and not (nested_out and out.resolve() in p.resolve().parents)]
            if not sources:
                plan.errors.append((root, "no images found in this folder"))
            for src in sources:
                rel = src.relative_to(root)
                dest = out / root.name / rel if out is not None and len(inputs) > 1 else (
                    out / rel if out is not None else src.with_name(src.stem + OUTPUT_SUFFIX + src.suffix))
                plan.jobs.append(Job(src, dest, _compare_path(dest) if compare else None))
        else:  # a file, or a path that reading will report as missing
            if out_is_file:
                dest = out
            elif out is not None:
                dest = out / root.name
            else:
                dest = root.with_name(root.stem + OUTPUT_SUFFIX + root.suffix)
            plan.jobs.append(Job(root, dest, _compare_path(dest) if compare else None))
    inputs_resolved = {j.source.resolve() for j in plan.jobs}
    for job in plan.jobs:
        for target in filter(None, (job.output, job.compare)):
            if target.resolve() in inputs_resolved and job.source.exists():
                plan.errors.append((job.source, f"output {target} would overwrite an input; choose another -o"))
    bad = {p for p, _ in plan.errors}
    plan.jobs = [j for j in plan.jobs if j.source not in bad]
    return plan


def collisions(plan: Plan) -> list[tuple[Path, Path, Path]]:
    """(output, first input, second input) for every output two jobs would write: `a/x.jpg b/x.jpg -o out/`
    would otherwise keep one result and silently lose the other."""
    owner: dict[Path, Path] = {}
    clashes = []
    for job in plan.jobs:
        for target in filter(None, (job.output, job.compare)):
            key = target.resolve()
            if key in owner and owner[key] != job.source:
                clashes.append((target, owner[key], job.source))
            owner.setdefault(key, job.source)
    return clashes


def skip_done(plan: Plan) -> int:
    """Drop jobs whose outputs all exist (an interrupted run resumed: outputs are published atomically, so an
    existing one is complete). -> how many were dropped."""
    before = len(plan.jobs)
    plan.jobs = [j for j in plan.jobs if not all(t.exists() for t in filter(None, (j.output, j.compare)))]
    return before - len(plan.jobs)


def colorize_files(colorizer, jobs: list[Job], render_factor: int, batch_size: int = BATCH_SIZE,
                   overwrite: bool = False, max_pixels: int = MAX_PIXELS,
                   on_done: Callable[[Outcome], None] | None = None, guide: Guide = Guide()) -> list[Outcome]:
    """Run jobs in chunks of batch_size (read -> colorize in one batch -> write). A bad file fails alone.
    guide: colour hints (for a single photo) and/or a reference photo (hints.Guide)."""
    outcomes = []
    for start in range(0, len(jobs), max(1, batch_size)):
        chunk = jobs[start:start + batch_size]
        t0 = time.perf_counter()
        images, ready = [], []
        for job in chunk:
            try:
                if not overwrite and job.output.exists():
                    raise ImageError(f"{job.output}: exists (use --overwrite to replace it)")
                images.append(read_image(job.source, max_pixels))
                ready.append(job)
            except ImageError as e:
                _finish(outcomes, Outcome(job, str(e)), on_done)
            except (MemoryError, OSError, ValueError) as e:  # a decoder or the OS failing on this one file
                _finish(outcomes, Outcome(job, f"{job.source}: cannot read ({_reason(e)})"), on_done)
        if not ready:
            continue
        results = _colorize(colorizer, images, render_factor, batch_size, guide)
        seconds = (time.perf_counter() - t0) / len(ready)  # read + colorize, per image of the chunk
        for job, before, after in zip(ready, images, results):
            if isinstance(after, Exception):
                _finish(outcomes, Outcome(job, f"{job.source}: cannot colorize ({_reason(after)})", seconds), on_done)
            else:
                _finish(outcomes, _write(job, before, after, overwrite, seconds), on_done)
    return outcomes


def _colorize(colorizer, images: list, render_factor: int, batch_size: int, guide: Guide) -> list:
    """Colour images, or for each image that failed its exception: when a batch fails (a value the checks
    refuse, out of memory at some size), each image is retried alone so only the culprit fails."""
    try:
        return colorizer.colorize_batch(images, render_factor, batch_size, guide.hints_for(len(images)),
                                        guide.reference)
    except Exception as e:  # noqa: BLE001 - whatever broke, the rest of the archive must go on
        if len(images) == 1:
            return [e]
    return [r for im in images for r in _colorize(colorizer, [im], render_factor, 1, guide)]


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _write(job: Job, before, after, overwrite: bool, seconds: float) -> Outcome:
    try:
        write_image(job.output, after, overwrite)
        if job.compare is not None:
            write_image(job.compare, comparison_sheet(before, after), overwrite)
    except (ImageError, OSError) as e:
        return Outcome(job, str(e) if isinstance(e, ImageError) else f"{job.output}: cannot write ({e})", seconds)
    return Outcome(job, None, seconds)


def _finish(outcomes: list[Outcome], outcome: Outcome, on_done) -> None:
    outcomes.append(outcome)
    if on_done is not None:
        on_done(outcome)
