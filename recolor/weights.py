"""Every path from a model name to tensors: embedded files, local files and the Hugging Face Hub.

A weights file is one `.safetensors` whose metadata holds the model config (JSON), so the file alone rebuilds
its generator. Nothing here ever unpickles: safetensors only, loaded to CPU.

Names:
- `default` or the stem of a file in `weights/` (embedded, shipped inside the wheel as `recolor.embedded`);
- a path to a `.safetensors` file;
- `owner/repo[@revision]` or `hf-hub:owner/repo[@revision]`: `model.safetensors` from the Hub through
  `huggingface_hub.hf_hub_download` (cached, revision-pinned, sha256-checked against the LFS etag,
  `HF_HUB_OFFLINE=1` respected, `HF_ENDPOINT` honoured at call time).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .atomic import replacing

FORMAT = "recolor"
FORMAT_VERSION = "1"
DEFAULT_MODEL = "recolor-small"
HUB_FILENAME = "model.safetensors"
_HUB_ID = re.compile(r"^(?:hf-hub:)?(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class WeightsError(Exception):
    """A model name that cannot be resolved, or a file that is not a valid recolor weights file."""


@dataclass(frozen=True)
class WeightsSource:
    name: str  # what the user asked for
    path: Path  # the local file
    kind: str  # "embedded" | "file" | "hub"


def embedded_dir() -> Path:
    return Path(str(resources.files("recolor.embedded")))


def embedded_models() -> dict[str, Path]:
    return {p.stem: p for p in sorted(embedded_dir().glob("*.safetensors"))}


def resolve(name: str) -> WeightsSource:
    """Model name -> local file (downloading from the Hub if needed)."""
    embedded = embedded_models()
    key = DEFAULT_MODEL if name == "default" else name
    if key in embedded:
        return WeightsSource(name, embedded[key], "embedded")
    path = Path(name).expanduser()
    if path.is_file():
        return WeightsSource(name, path, "file")
    if name.endswith(".safetensors") or os.sep in name.rstrip(os.sep) and path.parent.is_dir():
        raise WeightsError(f"model file not found: {name}")
    match = _HUB_ID.match(name)
    if match:
        return WeightsSource(name, download_from_hub(match["repo"], match["rev"]), "hub")
    known = ", ".join(["default", *embedded]) or "none"
    raise WeightsError(f"unknown model {name!r}: use a .safetensors path, owner/repo[@revision] on the "
                       f"Hugging Face Hub, or an embedded model ({known})")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def download_from_hub(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    try:
        path = Path(hf_hub_download(repo_id, HUB_FILENAME, revision=revision, endpoint=os.environ.get("HF_ENDPOINT"),
                                    local_files_only=_offline(), library_name="recolor"))
    except LocalEntryNotFoundError as e:
        raise WeightsError(f"{repo_id}: not in the local cache and the Hub cannot be reached "
                           f"(offline={_offline()}): {str(e).splitlines()[0]}") from None
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise WeightsError(f"{repo_id}@{revision or 'main'}: download failed: {str(e).splitlines()[0]}") from None
    verify_hub_blob(path)
    return path


def verify_hub_blob(path: Path) -> None:
    """The Hub cache names each blob by its etag, which for LFS files is the content's sha256: check it."""
    blob = path.resolve()
    if not _SHA256.match(blob.name):
        return  # a small non-LFS file: the registry records no sha256
    digest = sha256_of(blob)
    if digest != blob.name:
        raise WeightsError(f"{path}: sha256 {digest} does not match the Hub's {blob.name}; "
                           f"delete it from the cache and download again")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ read / write
def read_metadata(path: Path) -> dict:
    """A recolor weights file's metadata (config JSON and info), checked, without reading tensors or torch."""
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None
    if meta.get("format") != FORMAT or "config" not in meta:
        raise WeightsError(f"{path}: not a recolor weights file (no recolor config in its metadata)")
    return meta


def read_weights(path: Path):
    """-> (ModelConfig, state_dict of float32 CPU tensors, metadata dict)."""
    from safetensors import SafetensorError, safe_open
    from .model import ModelConfig
    meta = read_metadata(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None
    try:
        config = ModelConfig.from_dict(_retired_dropped(json.loads(meta["config"]), tensors, path))
    except (ValueError, TypeError) as e:
        raise WeightsError(f"{path}: bad model config: {e}") from None
    state = {k: t.float() if t.is_floating_point() else t for k, t in tensors.items()}
    return config, state, meta


# options older files state that no longer exist, and the value at which each changed nothing
RETIRED = {"hints": None, "chroma_gain": 1.0}


def _retired_dropped(config: dict, tensors: dict, path: Path) -> dict:
    """Older files' retired options and hint-input tensors (`hints.*`), dropped where they changed nothing: a
    hint input whose weights are all zero added exactly zero (model.Generator), and a chroma gain of 1 is none.
    Anything else would change the colours, so it is refused, loudly."""
    hint_keys = [k for k in tensors if k.startswith("hints.")]
    if any(tensors[k].count_nonzero() for k in hint_keys):
        raise WeightsError(f"{path}: its colour-hint input has non-zero weights, which this version of recolor "
                           f"no longer runs (hints are held by propagation alone)")
    for key in hint_keys:
        del tensors[key]
    changed = {k: config[k] for k, neutral in RETIRED.items()
               if k in config and neutral is not None and config[k] != neutral}
    if changed:
        raise WeightsError(f"{path}: retired model options that would change its colours: {changed}")
    return {k: v for k, v in config.items() if k not in RETIRED}


def load_model(name: str | WeightsSource = "default"):
    """Name -> (generator in eval mode on CPU, WeightsSource, metadata). Every key must match, loudly."""
    from .model import create_model
    source = name if isinstance(name, WeightsSource) else resolve(name)
    config, state, meta = read_weights(source.path)
    model = create_model(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise WeightsError(f"{source.path}: weights do not fit {config.encoder} generator "
                           f"(missing {len(missing)} keys, e.g. {missing[:2]}; unexpected {unexpected[:2]})")
    return model.eval(), source, meta


def save_weights(model, path: str | Path, half: bool = True, info: dict | None = None) -> Path:
    """Spectral norm baked in, optionally store fp16, write atomically. `info` lands in the metadata as JSON."""
    from safetensors.torch import save_file
    from .model import inference_state_dict
    state = {}
    for k, t in inference_state_dict(model).items():
        t = t.detach().cpu().contiguous()
        state[k] = t.half() if half and t.is_floating_point() else t
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": json.dumps(model.config.to_dict()),
            "info": json.dumps(info or {})}
    path = Path(path)
    with replacing(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return path


def describe(path: Path) -> dict:
    """Config and info of a weights file without building the model."""
    from safetensors import safe_open
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata() or {}
    return {"config": json.loads(meta.get("config", "{}")), "info": json.loads(meta.get("info", "{}")),
            "size_mb": path.stat().st_size / 1e6}


def hub_cached_models() -> dict[str, list[str]]:
    """Hub repos in the local cache that hold a recolor weights file -> their cached revisions (short)."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound
    try:
        cache = scan_cache_dir()
    except (CacheNotFound, OSError):
        return {}
    found = {}
    for repo in cache.repos:
        revs = [r.commit_hash[:10] for r in repo.revisions if any(f.file_name == HUB_FILENAME for f in r.files)]
        if revs and repo.repo_type == "model":
            found[repo.repo_id] = revs
    return found
