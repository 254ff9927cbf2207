"""The two ways the network runs, behind one small interface the engine drives:

    runner.predict(l_small)   L (B, h, w) in [0, 100], h and w multiples of 32 -> a/b (B, h, w, 2) float32
    runner.out_of_memory      the exceptions that mean "too big for the device" (none for ONNX Runtime)
    runner.free_memory()      what the device keeps for the largest batch so far: before a smaller retry after
                              one of them, and for a server gone idle (ONNX Runtime's arena, torch's CUDA cache)
    runner.share_cores()      a context in which the network leaves a core to the film's decode/encode threads

`TorchRunner`: the generator in torch, on any device and precision, working on its own copy of the model.
`OnnxRunner`: its ONNX graph in ONNX Runtime (onnx_runtime.py), fp32 on the CPU, and torch never loads.
`open_runner` picks one: `auto` is ONNX Runtime where the work lands on the CPU in fp32, torch elsewhere.
"""
from __future__ import annotations

import contextlib
import copy
import os
import platform
from pathlib import Path

import numpy as np

RUNTIMES = ("auto", "onnx", "torch")
ONNX_CPU_ONLY = "--runtime onnx runs fp32 on the CPU only: use --device cpu and --precision fp32/auto"


# ------------------------------------------------------------------------------------------- choosing
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


def open_runner(model=None, weights: Path | None = None, device="auto", precision: str = "auto",
                runtime: str = "auto"):
    """The runner for a generator, or for a weights file (whose model loads only if torch runs it)."""
    if use_onnx(runtime, str(device), precision):
        from .onnx_runtime import OnnxModel
        return OnnxRunner(OnnxModel.for_weights(Path(weights)) if weights is not None else OnnxModel.for_model(model))
    if model is None:
        from .weights import load_model
        model = load_model(str(weights))[0]
    return TorchRunner(model, device, precision)


# ------------------------------------------------------------------------------------------- runners
class TorchRunner:
    """The generator in torch. It runs a copy: the model it was given keeps its mode, device and layout."""
    name = "torch"

    def __init__(self, model, device="cpu", precision: str = "auto"):
        import torch
        self.device = pick_device(device) if isinstance(device, str) else device
        self.dtype = autocast_dtype(self.device, precision)
        self.model = copy.deepcopy(model).eval().to(self.device)
        if self.device.type in ("cuda", "cpu"):  # oneDNN's depthwise convs too: 1.5-1.8x on CPU (README)
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # render sizes repeat, so tuned kernels pay off
        self.out_of_memory = (torch.OutOfMemoryError,)

    def predict(self, l_small: np.ndarray) -> np.ndarray:
        import torch
        x = self._to_device(torch.from_numpy(np.ascontiguousarray(l_small, dtype=np.float32)).unsqueeze(1))
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.dtype or torch.float32,
                                                    enabled=self.dtype is not None):
            ab = self.model(x)
        return ab.float().permute(0, 2, 3, 1).cpu().numpy()  # (B, h, w, 2)

    def _to_device(self, x):
        """(B, C, h, w) CPU tensor -> the device, channels-last where the kernels prefer it."""
        import torch
        if self.device.type == "cuda":
            return x.pin_memory().to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        if self.device.type == "cpu":
            return x.contiguous(memory_format=torch.channels_last)
        return x.to(self.device)

    def free_memory(self) -> None:
        if self.device.type == "cuda":
            import torch
            torch.cuda.empty_cache()

    @contextlib.contextmanager
    def share_cores(self):
        """On the CPU, all cores but one: OpenMP's spinning barriers collapse when another busy thread takes
        one of their cores (measured on 2 cores: 2 torch threads beside the film pipeline ran 2 fps, 1 ran 38)."""
        import torch
        cores = os.cpu_count() or 1
        if self.device.type != "cpu" or cores < 2:
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(min(before, cores - 1))
        try:
            yield
        finally:
            torch.set_num_threads(before)


class OnnxRunner:
    """The graph in ONNX Runtime on the CPU (its idle threads sleep, so sharing cores costs nothing)."""
    name = "onnx"
    device = None
    out_of_memory: tuple[type[BaseException], ...] = ()  # the CPU's memory: nothing to retry smaller

    def __init__(self, graph):
        self.graph = graph  # onnx_runtime.OnnxModel

    def predict(self, l_small: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.graph(l_small[:, None]).transpose(0, 2, 3, 1))  # (B, h, w, 2)

    def free_memory(self) -> None:
        self.graph.release_memory()

    def share_cores(self):
        return contextlib.nullcontext()
