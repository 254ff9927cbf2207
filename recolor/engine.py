"""The inference engine every command shares: image in, colour image out, luminance untouched.

    image -> L (CIE Lab, full resolution) -> resize a copy to the render size -> generator -> a/b
          -> upsample a/b to full size -> merge with the ORIGINAL L -> RGB

Only chroma comes from the network, so the output keeps the input's size, detail and luminance
(DeOldify's "render factor" idea: the network sees a small copy; the eye barely sees low-res chroma).
The engine never touches files; `files.py` and `video.py` feed it arrays.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import platform
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import color
from .defaults import BATCH_SIZE, PHOTO_RENDER_FACTOR
from .hints import HintError, as_hints, check_inside, hint_planes
from .propagation import propagate
from .reference import Palette

log = logging.getLogger("recolor")


@dataclass(frozen=True)
class InferenceConfig:
    model: str = "default"
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: str = "auto"  # auto (fp32 on CPU, bf16/fp16 autocast on GPU) | fp32 | fp16 | bf16
    batch_size: int = BATCH_SIZE
    runtime: str = "auto"  # auto (ONNX Runtime on the CPU, torch on GPUs) | onnx | torch


RUNTIMES = ("auto", "onnx", "torch")
ONNX_CPU_ONLY = "--runtime onnx runs fp32 on the CPU only: use --device cpu and --precision fp32/auto"


def pick_device(name: str = "auto"):
    """auto: cuda > mps > cpu. An explicit device that is not there is an error, not a silent fallback."""
    import torch
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is available here (try --device cpu)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps: Apple MPS is not available here (try --device cpu)")
    return device


def gpu_possible() -> bool:
    """Could torch find a GPU here? Asked without importing torch (seconds): a GPU needs a driver."""
    if platform.system() == "Darwin":
        return platform.machine() == "arm64"  # Apple silicon: MPS
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/kfd", "/dev/dxg"))


def use_onnx(runtime: str, device: str, precision: str) -> bool:
    """Whether a model runs in ONNX Runtime: `onnx`, or `auto` where the work lands on the CPU in fp32."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}")
    if runtime == "torch":
        return False
    cpu_fp32 = precision in ("auto", "fp32") and (device == "cpu" or device == "auto" and (
        not gpu_possible() or pick_device("auto").type == "cpu"))
    if runtime == "onnx" and not cpu_fp32:
        raise ValueError(ONNX_CPU_ONLY)
    if runtime == "auto" and cpu_fp32 and importlib.util.find_spec("onnxruntime") is None:
        log.warning("onnxruntime is not installed: running on torch (pip install onnxruntime for speed)")
        return False
    return cpu_fp32


def autocast_dtype(device, precision: str):
    """The autocast dtype for a device and precision choice, or None for plain fp32."""
    import torch
    if precision == "fp32" or (precision == "auto" and device.type == "cpu"):
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16  # mps


class Colorizer:
    """A generator on a device, or its ONNX graph in ONNX Runtime (CPU, and torch never loads). Stateless
    between calls: it never keeps an image."""

    hold_hints = True  # spread each hint's correction along the photo's regions (propagation.py); off: the network alone

    def __init__(self, model, device="cpu", precision: str = "auto", source=None, metadata: dict | None = None,
                 runtime: str = "torch"):
        from .onnx_runtime import OnnxModel
        self.source = source
        self.metadata = metadata or {}
        if isinstance(model, OnnxModel):
            self.onnx, self.model, self.device, self.dtype = model, None, None, None
            return
        import torch
        self.device = pick_device(device) if isinstance(device, str) else device
        # ONNX Runtime is fp32 only: "auto" means fp32 there, an explicit fp16/bf16 is refused
        self.dtype = None if runtime == "onnx" and precision == "auto" else autocast_dtype(self.device, precision)
        self.onnx = self._onnx_model(model, source, runtime)
        self.model = model.eval().to(self.device)
        if self.device.type in ("cuda", "cpu"):  # oneDNN's depthwise convs too: 1.5-1.8x on CPU (README)
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # render sizes repeat, so tuned kernels pay off

    @classmethod
    def from_pretrained(cls, name: str = "default", device: str = "auto", precision: str = "auto",
                        runtime: str = "auto") -> "Colorizer":
        """name: "default", an embedded model, a .safetensors path, or owner/repo[@revision] on the Hub.
        runtime auto: ONNX Runtime where the model runs on the CPU in fp32 (no torch start-up), torch elsewhere."""
        from .weights import load_model, read_metadata, resolve
        source = resolve(name)
        if use_onnx(runtime, device, precision):
            from .onnx_runtime import OnnxModel
            return cls(OnnxModel.for_weights(source.path), "cpu", "fp32", source, read_metadata(source.path))
        model, source, meta = load_model(source)
        return cls(model, device, precision, source, meta, "torch" if runtime == "auto" else runtime)

    @property
    def runtime(self) -> str:
        return "torch" if self.onnx is None else "onnx"

    def _onnx_model(self, model, source, runtime: str):
        """The ONNX Runtime session for runtime="onnx" (None for torch); only fp32 on the CPU is offered."""
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}")
        if runtime != "onnx":
            return None
        if self.device.type != "cpu" or self.dtype is not None:
            raise ValueError(ONNX_CPU_ONLY)
        from .onnx_runtime import OnnxModel
        return OnnxModel.for_model(model, getattr(source, "path", None))

    @property
    def takes_hints(self) -> bool:
        """Whether the model was built with hint inputs (guided colour)."""
        if self.onnx is not None:
            return self.onnx.takes_hints
        return bool(self.model.config.hints)

    # ------------------------------------------------------------------------------------------- network
    def predict_ab(self, l_small: np.ndarray, hints: np.ndarray | None = None) -> np.ndarray:
        """One network call: L (B, h, w) in [0, 100], h and w multiples of 32, and optional hint planes
        (B, 3, h, w) (see hints.py) -> ab (B, h, w, 2) float32."""
        if self.onnx is not None:
            return np.ascontiguousarray(self.onnx(l_small[:, None], hints).transpose(0, 2, 3, 1))  # (B, h, w, 2)
        import torch
        x = self._to_device(torch.from_numpy(np.ascontiguousarray(l_small, dtype=np.float32)).unsqueeze(1))
        h = None if hints is None else self._to_device(torch.from_numpy(np.ascontiguousarray(hints, np.float32)))
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.dtype or torch.float32,
                                                    enabled=self.dtype is not None):
            ab = self.model(x, h)
        return ab.float().permute(0, 2, 3, 1).cpu().numpy()  # (B, h, w, 2)

    def _to_device(self, x):
        """(B, C, h, w) CPU tensor -> the device, channels-last where the kernels prefer it."""
        import torch
        if self.device.type == "cuda":
            return x.pin_memory().to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        if self.device.type == "cpu":
            return x.contiguous(memory_format=torch.channels_last)
        return x.to(self.device)

    def out_of_memory(self) -> tuple[type[BaseException], ...]:
        """The exceptions that mean "too big for the device": torch's, which ONNX Runtime never raises."""
        if self.onnx is not None:
            return ()
        import torch
        return (torch.OutOfMemoryError,)

    def free_memory(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            import torch
            torch.cuda.empty_cache()

    def predict_ab_safe(self, l_small: np.ndarray, hints: np.ndarray | None = None) -> np.ndarray:
        """predict_ab, but a GPU out-of-memory splits the batch instead of failing."""
        try:
            return self.predict_ab(l_small, hints)
        except self.out_of_memory():
            if len(l_small) == 1:
                raise
            self.free_memory()
            half = len(l_small) // 2
            log.warning("out of GPU memory at batch %d; retrying in halves", len(l_small))
            first, rest = (None, None) if hints is None else (hints[:half], hints[half:])
            return np.concatenate([self.predict_ab_safe(l_small[:half], first),
                                   self.predict_ab_safe(l_small[half:], rest)])

    # ------------------------------------------------------------------------------------------- images
    def chroma(self, l_full: Sequence[np.ndarray], render_factor: int = PHOTO_RENDER_FACTOR,
               batch_size: int = BATCH_SIZE, hints: Sequence[list | None] | None = None) -> list[np.ndarray]:
        """Full-resolution L planes (and optionally each one's list of hints.Hint) -> their a/b at render size,
        batched by render size.

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
                batch = np.stack([color.resize_l(l_full[i], size) for i in chunk])
                planes = None
                if any(hints[i] for i in chunk):
                    planes = np.stack([hint_planes(hints[i] or [], l_full[i].shape[:2], size) for i in chunk])
                try:
                    ab = self.predict_ab_safe(batch, planes)
                except self.out_of_memory():
                    if render_factor <= color.RENDER_FACTOR_MIN:
                        raise
                    lower = max(color.RENDER_FACTOR_MIN, int(render_factor * 0.75))
                    log.warning("out of GPU memory at render factor %d; retrying at %d", render_factor, lower)
                    self.free_memory()
                    ab = self.chroma([l_full[i] for i in chunk], lower, 1, [hints[i] for i in chunk])
                    planes = None  # held in that call
                if planes is not None and self.hold_hints:
                    ab = [propagate(a, l, p) for a, l, p in zip(ab, batch, planes)]
                for i, a in zip(chunk, ab):
                    out[i] = a
        return out

    def _checked_hints(self, l_full: Sequence[np.ndarray], hints) -> list:
        """One list of hints per image (None where there are none), checked against the model and the photo."""
        if hints is None:
            return [None] * len(l_full)
        if len(hints) != len(l_full):
            raise ValueError(f"{len(hints)} hint lists for {len(l_full)} images")
        hints = [as_hints(h) if h else None for h in hints]
        if any(hints) and not self.takes_hints:
            raise HintError("this model takes no colour hints (it was trained without them)")
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
