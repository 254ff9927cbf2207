"""The inference engine every command shares: image in, colour image out, luminance untouched.

    image -> L (CIE Lab, full resolution) -> resize a copy to the render size -> generator -> a/b
          -> upsample a/b to full size -> merge with the ORIGINAL L -> RGB

Only chroma comes from the network, so the output keeps the input's size, detail and luminance
(DeOldify's "render factor" idea: the network sees a small copy; the eye barely sees low-res chroma).
The network runs in a runner (runners.py: torch, or ONNX Runtime on the CPU) behind one small interface, so
this pipeline is the same for both. The engine never touches files; `files.py` and `video.py` feed it arrays.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from typing import Sequence

import numpy as np

from . import color
from .defaults import BATCH_SIZE, PHOTO_RENDER_FACTOR
from .hints import as_hints, check_inside, hint_planes
from .propagation import propagate
from .reference import Palette
from .runners import open_runner

log = logging.getLogger("recolor")


class Colorizer:
    """A runner (runners.py: the generator in torch, or its graph in ONNX Runtime), the weights it came from
    and their metadata. Stateless between calls: it never keeps an image."""

    hold_hints = True  # spread each hint's correction along the photo's regions (propagation.py); off: none

    def __init__(self, runner, source=None, metadata: dict | None = None):
        self.runner = runner
        self.source = source
        self.metadata = metadata or {}

    @classmethod
    def from_model(cls, model, device="cpu", precision: str = "auto", runtime: str = "torch") -> "Colorizer":
        """A generator built or loaded in Python; it is left as it was given (the runner works on a copy)."""
        return cls(open_runner(model, None, device, precision, runtime))

    @classmethod
    def from_pretrained(cls, name: str = "default", device: str = "auto", precision: str = "auto",
                        runtime: str = "auto") -> "Colorizer":
        """name: "default", an embedded model, a .safetensors path, or owner/repo[@revision] on the Hub.
        runtime auto: ONNX Runtime where the model runs on the CPU in fp32 (no torch start-up), torch elsewhere."""
        from .weights import read_metadata, resolve
        source = resolve(name)
        metadata = read_metadata(source.path)  # a file that is no recolor model fails here, before any export
        return cls(open_runner(None, source.path, device, precision, runtime), source, metadata)

    @property
    def runtime(self) -> str:
        return self.runner.name

    @property
    def device(self):
        """The torch device, or None where ONNX Runtime runs the network (on the CPU)."""
        return self.runner.device

    def share_cores(self):
        """A context in which the network leaves a core to the film pipeline's decode and encode threads."""
        return self.runner.share_cores()

    # ------------------------------------------------------------------------------------------- network
    def predict_ab(self, l_small: np.ndarray) -> np.ndarray:
        """One network call: L (B, h, w) in [0, 100], h and w multiples of 32 -> ab (B, h, w, 2) float32."""
        return self.runner.predict(l_small)

    def predict_ab_safe(self, l_small: np.ndarray) -> np.ndarray:
        """predict_ab, but a GPU out-of-memory splits the batch instead of failing."""
        try:
            return self.predict_ab(l_small)
        except self.runner.out_of_memory:
            if len(l_small) == 1:
                raise
            self.runner.free_memory()
            half = len(l_small) // 2
            log.warning("out of GPU memory at batch %d; retrying in halves", len(l_small))
            return np.concatenate([self.predict_ab_safe(l_small[:half]), self.predict_ab_safe(l_small[half:])])

    # ------------------------------------------------------------------------------------------- images
    def chroma(self, l_full: Sequence[np.ndarray], render_factor: int = PHOTO_RENDER_FACTOR,
               batch_size: int = BATCH_SIZE, hints: Sequence[list | None] | None = None,
               l_small: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        """Full-resolution L planes (and optionally each one's list of hints.Hint) -> their a/b at render size,
        batched by render size. l_small: the planes already resized to the render size (the film pipeline has
        them), so they are not resized twice.

        A GPU out-of-memory on a single image retries at a lower render factor, with a warning."""
        color.check_render_factor(render_factor)
        hints = self._checked_hints(l_full, hints)
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, l in enumerate(l_full):
            groups[color.render_size(*l.shape[:2], render_factor)].append(i)
        out: list[np.ndarray | None] = [None] * len(l_full)
        for size, indices in groups.items():
            for start in range(0, len(indices), max(1, batch_size)):
                chunk = indices[start:start + batch_size]
                small = [l_small[i] if l_small is not None and l_small[i].shape == size else None for i in chunk]
                ab = self._chunk_chroma([l_full[i] for i in chunk], size, [hints[i] for i in chunk], render_factor,
                                        small)
                for i, a in zip(chunk, ab):
                    out[i] = a
        return out

    def _chunk_chroma(self, l_full: list[np.ndarray], size: tuple[int, int], hints: list,
                      render_factor: int, small: list) -> list[np.ndarray]:
        """One network call on L planes of one render size -> their a/b there, each image's hints held."""
        batch = np.stack([color.resize_l(l, size) if s is None else s for l, s in zip(l_full, small)])
        try:
            ab = self.predict_ab_safe(batch)
        except self.runner.out_of_memory:
            if render_factor <= color.RENDER_FACTOR_MIN:
                raise
            lower = max(color.RENDER_FACTOR_MIN, int(render_factor * 0.75))
            log.warning("out of GPU memory at render factor %d; retrying at %d", render_factor, lower)
            self.runner.free_memory()
            return self.chroma(l_full, lower, 1, hints)  # hints held in that call
        if not (self.hold_hints and any(hints)):
            return list(ab)
        planes = [hint_planes(h or [], l.shape[:2], size) for h, l in zip(hints, l_full)]
        return [propagate(a, l, p) for a, l, p in zip(ab, batch, planes)]

    def _checked_hints(self, l_full: Sequence[np.ndarray], hints) -> list:
        """One list of hints per image (None where there are none), each checked against its photo."""
        if hints is None:
            return [None] * len(l_full)
        if len(hints) != len(l_full):
            raise ValueError(f"{len(hints)} hint lists for {len(l_full)} images")
        hints = [as_hints(h) if h else None for h in hints]
        for h, l in zip(hints, l_full):
            check_inside(h or [], l.shape[1], l.shape[0])
        return list(hints)

    def colorize_batch(self, images: Sequence[np.ndarray], render_factor: int = PHOTO_RENDER_FACTOR,
                       batch_size: int = BATCH_SIZE, hints: Sequence[list | None] | None = None,
                       reference: np.ndarray | None = None) -> list[np.ndarray]:
        """Many images -> colour images; see `colorize`. hints: one list (or None) per image."""
        images = [np.asarray(im) for im in images]
        l_full = [color.luminance(im) for im in images]  # only L is kept: no full-size RGB/Lab copies
        ab = self.chroma(l_full, render_factor, batch_size, hints)
        palette = None if reference is None else Palette.of(reference)
        results = []
        for im, l, a in zip(images, l_full, ab):
            if palette is not None:
                a = palette.apply(a)
            rgb = color.merge_l_ab(l, a)
            alpha = color.alpha_channel(im)
            results.append(rgb if alpha is None else np.dstack([rgb, alpha]))
        return results

    def colorize(self, image: np.ndarray, render_factor: int = PHOTO_RENDER_FACTOR, hints: list | None = None,
                 reference: np.ndarray | None = None) -> np.ndarray:
        """Gray, RGB or RGBA array (uint8, uint16 or float in [0, 1]; RGB order) -> RGB uint8 of the same
        height and width (RGBA if the input had alpha, which is kept). A colour input is re-coloured
        from its luminance.

        hints: points that say "this spot was this colour", in the image's pixels: hints.Hint objects,
        "120,340=#a03020" strings or {"x": 120, "y": 340, "color": "navy"} dicts; reference: an RGB photo whose
        palette the result should lean towards (reference.Palette)."""
        return self.colorize_batch([image], render_factor, 1, [hints] if hints else None, reference)[0]


def colorize_image(image: np.ndarray, render_factor: int = PHOTO_RENDER_FACTOR, model: str = "default",
                   device: str = "auto") -> np.ndarray:
    """One-shot convenience: load a model and colorize one array (load a Colorizer once for many)."""
    return Colorizer.from_pretrained(model, device).colorize(image, render_factor)
