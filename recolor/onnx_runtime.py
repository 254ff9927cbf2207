"""The CPU runtime: the generator as an ONNX graph, run by ONNX Runtime, without loading torch.

    recolor image photo.jpg                    # CPU: ONNX Runtime (the default), GPU: torch
    recolor image photo.jpg --runtime torch    # torch on the CPU too

Where the graph comes from, first match wins:
1. a graph shipped beside the weights (`recolor-small.onnx` next to `recolor-small.safetensors`): only the
   network's structure (~160 KB); its tensors are read straight out of the safetensors file as ONNX external
   data, so the weights ship once. It records the sha256 of the weights it was made for and is used only with
   them (`write_graph` makes it; a test re-exports the model with today's code and checks the graph is the same);
2. an export cached in $RECOLOR_CACHE or ~/.cache/recolor/onnx, keyed by everything that shapes the graph
   (weights, model and export code, torch version, opset), so a stale export is never reused;
3. otherwise torch loads once to export the model into that cache.
ORT folds batch norm into the convolutions and fuses activations, which eager PyTorch does not
(benchmarks/README.md). Only fp32 on the CPU: the engine refuses other combinations.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import struct
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np

from .atomic import replacing
from .weights import sha256_of

log = logging.getLogger("recolor")
OPSET = 17
MODEL_CODE = tuple(Path(__file__).with_name(name) for name in ("model.py", "encoders.py"))  # builds the network
_SAFETENSORS_TYPES = {"F32": 1, "F16": 10}  # safetensors dtype -> onnx.TensorProto data type


class OnnxUnavailable(RuntimeError):
    """An export needs the onnx package (and torch), and they are not installed."""


def cache_dir() -> Path:
    root = os.environ.get("RECOLOR_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "recolor"
    return Path(root) / "onnx"


def default_threads() -> int:
    """OMP_NUM_THREADS where set (as for torch; torchrun gives each process 1), else every core we may use."""
    setting = os.environ.get("OMP_NUM_THREADS", "")
    if setting.isdigit() and int(setting) > 0:
        return int(setting)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# ------------------------------------------------------------------------------------------- export
def export(model, path: Path, fold: bool = True) -> Path:
    """Export a generator with dynamic batch, height and width; written atomically (the cache may be shared).
    fold=False keeps every tensor under its state-dict name (batch norm unfolded), as `write_graph` needs."""
    import torch
    try:
        import onnx  # noqa: F401  (torch's TorchScript exporter needs it and fails late without it)
    except ImportError:
        raise OnnxUnavailable("exporting to ONNX needs the onnx package: pip install 'recolor[torch]'") from None
    axes = {name: {0: "batch", 2: "height", 3: "width"} for name in ("l", "ab")}
    with replacing(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and constant-folding chatter
        torch.onnx.export(copy.deepcopy(model).eval(), (torch.full((1, 1, 64, 64), 50.0),), str(tmp), dynamo=False,
                          opset_version=OPSET, do_constant_folding=fold, input_names=["l"], output_names=["ab"],
                          dynamic_axes=axes)
    return path


def write_graph(weights_path: Path) -> Path:
    """Write `<stem>.onnx` beside a weights file: the structure only, every tensor an external-data reference
    into the safetensors file (fp16 ones through a Cast that ORT folds away at load)."""
    import onnx
    from onnx import TensorProto, helper
    from .weights import load_model
    model, _, _ = load_model(str(weights_path))
    graph_file = weights_path.with_suffix(".graph")
    try:
        graph = onnx.load(str(export(model, graph_file, fold=False)))
    finally:
        graph_file.unlink(missing_ok=True)
    layout, base = safetensors_layout(weights_path)
    tensors, casts = [], []
    for init in graph.graph.initializer:
        dtype, shape, (begin, end) = layout[init.name]
        t = TensorProto(name=init.name if dtype == "F32" else init.name + ".f16",
                        data_type=_SAFETENSORS_TYPES[dtype], dims=shape, data_location=TensorProto.EXTERNAL)
        for key, value in (("location", weights_path.name), ("offset", base + begin), ("length", end - begin)):
            t.external_data.add(key=key, value=str(value))
        tensors.append(t)
        if dtype != "F32":
            casts.append(helper.make_node("Cast", [t.name], [init.name], to=TensorProto.FLOAT))
    del graph.graph.initializer[:]
    graph.graph.initializer.extend(tensors)
    nodes = list(graph.graph.node)
    del graph.graph.node[:]
    graph.graph.node.extend(casts + nodes)
    onnx.helper.set_model_props(graph, graph_stamp(weights_path))
    path = weights_path.with_suffix(".onnx")
    with replacing(path) as tmp:
        onnx.save(graph, str(tmp))
    return path


def safetensors_layout(path: Path) -> tuple[dict, int]:
    """-> ({name: (dtype, shape, (begin, end))}, offset of the data block): the file's own header."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], v["data_offsets"]) for k, v in header.items()}, 8 + size


def graph_stamp(weights_path: Path) -> dict[str, str]:
    """What a shipped graph was made for; it is used only while this still holds."""
    return {"recolor.weights_sha256": sha256_of(weights_path)}


def _key(model, weights_path: Path | None) -> str:
    """Everything that shapes an exported graph: the weights and config (the file's sha256, or the tensors of
    a model built in Python), the code that builds the network and exports it, the exporter's torch version
    and the opset. A change to any of them makes a new export instead of reusing a stale one."""
    h = hashlib.sha256()
    if weights_path is not None:
        h.update(sha256_of(Path(weights_path)).encode())
    else:
        h.update(repr(getattr(model, "config", "")).encode())
        for name, t in model.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    for code in (*MODEL_CODE, Path(__file__)):
        h.update(code.read_bytes())
    h.update(f"torch {_torch_version()} opset {OPSET}".encode())
    return h.hexdigest()[:16]


def _torch_version() -> str:
    try:
        return metadata.version("torch")  # without importing it: that costs seconds
    except metadata.PackageNotFoundError:
        return "none"


# ------------------------------------------------------------------------------------------- running
class OnnxModel:
    """L (B, 1, h, w) float32 numpy -> ab (B, 2, h, w) float32 numpy, like the generator's forward."""

    def __init__(self, path: Path):
        """Idle threads sleep instead of spinning, as OMP_WAIT_POLICY=PASSIVE does for torch: spinning threads
        collapse when other busy threads share their cores (film's decode and encode threads: 2.7-3.0 fps
        spinning, 4.5-5.2 fps not, on 2 busy cores; benchmarks/README.md)."""
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = default_threads()
        options.log_severity_level = 3  # its shape-inference warnings on dynamic axes are noise to a user
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.path = path

    def stamp(self) -> dict[str, str]:
        """The `graph_stamp` a shipped graph records (empty for exports)."""
        props = self.session.get_modelmeta().custom_metadata_map
        return {k: v for k, v in props.items() if k.startswith("recolor.")}

    def __call__(self, l: np.ndarray) -> np.ndarray:
        return self.session.run(["ab"], {"l": np.ascontiguousarray(l, dtype=np.float32)})[0]

    def release_memory(self) -> None:
        """Hand back ONNX Runtime's CPU arena, which keeps the memory of the largest batch so far (~200 MB after
        a film at render factor 21): one tiny run told to shrink it afterwards. For a server gone idle."""
        import onnxruntime as ort
        options = ort.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self.session.run(["ab"], {"l": np.zeros((1, 1, 64, 64), np.float32)}, options)

    @classmethod
    def for_weights(cls, weights_path: Path) -> "OnnxModel":
        """The graph for a weights file, torch-free when it is shipped or cached (see the module doc)."""
        shipped = weights_path.with_suffix(".onnx")
        if shipped.is_file():
            try:
                model = cls(shipped)
            except Exception:  # noqa: BLE001 - e.g. tensors that no longer fit: the export below replaces it
                model = None
            if model is not None and model.stamp() == graph_stamp(weights_path):
                return model
            log.info("%s was made for other weights: not used", shipped)
        path = cache_dir() / f"{_key(None, weights_path)}-opset{OPSET}.onnx"
        if not path.is_file():
            from .weights import load_model
            log.info("exporting the model to ONNX once: %s", path)
            export(load_model(str(weights_path))[0], path)
        return cls(path)

    @classmethod
    def for_model(cls, model) -> "OnnxModel":
        """The cached export of a generator built in Python."""
        path = cache_dir() / f"{_key(model, None)}-opset{OPSET}.onnx"
        if not path.is_file():
            log.info("exporting the model to ONNX once: %s", path)
            export(model, path)
        return cls(path)
