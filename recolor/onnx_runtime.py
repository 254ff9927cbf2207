"""Optional inference backend: the generator exported once to ONNX and run by ONNX Runtime on the CPU.

    pip install "recolor[onnx]"        # onnxruntime (runs the model) + onnx (needed by torch's exporter)
    recolor image photo.jpg --runtime onnx

The export is cached, keyed by everything that shapes the graph (weights, model code, torch, opset), in $RECOLOR_CACHE or ~/.cache/recolor/onnx (the
weights may live inside a read-only install, so not beside them). ORT folds batch norm into the convolutions
and fuses activations, which eager PyTorch does not; benchmarks/README.md has the measured effect.
Only fp32 on the CPU: the engine refuses other combinations rather than silently running something else.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from .atomic import replacing

log = logging.getLogger("recolor")
OPSET = 17


class OnnxUnavailable(RuntimeError):
    """--runtime onnx without the optional packages installed."""


def cache_dir() -> Path:
    root = os.environ.get("RECOLOR_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "recolor"
    return Path(root) / "onnx"


def export(model, path: Path) -> Path:
    """Export a generator with dynamic batch, height and width; written atomically (the cache may be shared)."""
    import torch
    try:
        import onnx  # noqa: F401  (torch's TorchScript exporter needs it and fails late without it)
    except ImportError:
        raise OnnxUnavailable("exporting to ONNX needs the onnx package: pip install 'recolor[onnx]'") from None
    example = torch.full((1, 1, 64, 64), 50.0)
    with replacing(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and constant-folding chatter
        torch.onnx.export(model.eval(), (example,), str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=["l"], output_names=["ab"],
                          dynamic_axes={"l": {0: "batch", 2: "height", 3: "width"},
                                        "ab": {0: "batch", 2: "height", 3: "width"}})
    return path


class OnnxModel:
    """L (B, 1, h, w) float32 numpy -> ab (B, 2, h, w) float32 numpy, like the generator's forward."""

    def __init__(self, path: Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise OnnxUnavailable("--runtime onnx needs onnxruntime: pip install 'recolor[onnx]'") from None
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or _torch_threads()  # the same cores torch was given
        options.log_severity_level = 3  # its shape-inference warnings on dynamic axes are noise to a user
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.path = path

    def __call__(self, l: np.ndarray) -> np.ndarray:
        return self.session.run(["ab"], {"l": np.ascontiguousarray(l, dtype=np.float32)})[0]

    @classmethod
    def for_model(cls, model, weights_path: Path | None = None) -> "OnnxModel":
        """The cached export for these weights (exported now if missing). Without a weights file, e.g. a
        model built in Python, a key from its parameters is used instead."""
        path = cache_dir() / f"{_key(model, weights_path)}-opset{OPSET}.onnx"
        if not path.is_file():
            log.info("exporting the model to ONNX once: %s", path)
            export(model, path)
        return cls(path)


def _torch_threads() -> int:
    import torch
    return torch.get_num_threads()


def _key(model, weights_path: Path | None) -> str:
    """Everything that shapes the exported graph: the weights and config (the file's sha256, or the tensors of
    a model built in Python), the code that builds the network and exports it, the exporter's torch version
    and the opset. A change to any of them makes a new export instead of reusing a stale one."""
    import hashlib
    import torch
    from . import model as model_code
    h = hashlib.sha256()
    if weights_path is not None:
        from .weights import sha256_of
        h.update(sha256_of(Path(weights_path)).encode())
    else:
        h.update(repr(getattr(model, "config", "")).encode())
        for name, t in model.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    for code in (model_code.__file__, __file__):
        h.update(Path(code).read_bytes())
    h.update(f"torch {torch.__version__} opset {OPSET}".encode())
    return h.hexdigest()[:16]
