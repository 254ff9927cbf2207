import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hub_server import FakeHub
from recolor.engine import Colorizer
from recolor.model import create_model
from recolor.weights import WeightsError, load_model, read_weights, resolve, save_weights


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    """Point huggingface_hub at a fresh cache and the loopback Hub, as a user would with env vars."""
    import huggingface_hub.constants as constants
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))  # read at import; the env var is for subprocesses
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub


@pytest.mark.parametrize("half", [False, True])
def test_save_load_round_trip(tmp_path, half):
    torch.manual_seed(1)
    model = create_model("recolor-small").eval()
    path = save_weights(model, tmp_path / "m.safetensors", half=half, info={"note": "test"})
    loaded, source, meta = load_model(str(path))
    assert source.kind == "file" and '"note": "test"' in meta["info"]
    l = torch.rand(1, 1, 64, 64) * 100
    with torch.no_grad():
        assert torch.allclose(model(l), loaded(l), atol=0.5 if half else 1e-4)
    assert not any(name.startswith(".") for name in os.listdir(tmp_path))  # atomic write left no temp file
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # as a new file, not the temp file's 0600


def test_default_resolves_to_the_embedded_file():
    source = resolve("default")
    assert source.kind == "embedded" and source.path.name == "recolor-small.safetensors"
    assert resolve("recolor-small").path == source.path


def test_bad_names_and_files_are_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        resolve(str(tmp_path / "missing.safetensors"))
    with pytest.raises(WeightsError, match="unknown model"):
        resolve("no such model")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"definitely not safetensors")
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        read_weights(junk)
    from safetensors.torch import save_file
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(WeightsError, match="not a recolor weights file"):
        read_weights(foreign)


def test_hub_download_is_revision_pinned_cached_and_verified(hub_env, model_file, monkeypatch):
    data = Path(model_file).read_bytes()
    commit = hub_env.add("someone/recolor-test", "v1", "model.safetensors", data)
    source = resolve("someone/recolor-test@v1")
    assert source.kind == "hub" and source.path.read_bytes() == data
    assert any("/someone/recolor-test/resolve/v1/model.safetensors" in p for _, p in hub_env.requests)
    assert commit in str(source.path)  # cached under the pinned commit
    # offline: the cache answers, the server is not asked
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    n = len(hub_env.requests)
    assert resolve("hf-hub:someone/recolor-test@v1").path.read_bytes() == data
    assert len(hub_env.requests) == n
    with pytest.raises(WeightsError, match="not in the local cache"):
        resolve("someone/never-downloaded")


def test_hub_checksum_mismatch_is_refused(hub_env, model_file):
    data = Path(model_file).read_bytes()
    wrong = "0" * 64  # the registry records a sha256 that the bytes do not have
    hub_env.add("someone/tampered", "main", "model.safetensors", data, etag=wrong)
    with pytest.raises(WeightsError, match="sha256"):
        resolve("someone/tampered")


def test_hub_missing_repo_is_a_clear_error(hub_env):
    with pytest.raises(WeightsError, match="download failed|not found|cannot be reached"):
        resolve("someone/absent@v9")


def test_cli_colorizes_with_a_hub_model(hub_env, model_file, tmp_path):
    """End to end, as a user: HF_ENDPOINT + HF_HUB_CACHE in the environment, the real CLI in a subprocess."""
    import cv2
    hub_env.add("someone/cli-model", "main", "model.safetensors", Path(model_file).read_bytes())
    img = tmp_path / "old.png"
    cv2.imwrite(str(img), np.random.default_rng(0).integers(0, 255, (64, 80), dtype=np.uint8))
    env = {**os.environ, "HF_ENDPOINT": hub_env.url, "HF_HUB_CACHE": str(tmp_path / "hf-cache")}
    run = subprocess.run([sys.executable, "-m", "recolor", "image", str(img), "--model", "someone/cli-model",
                          "-r", "8"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert cv2.imread(str(tmp_path / "old_color.png")).shape == (64, 80, 3)


def test_colorizer_from_pretrained_accepts_a_path(model_file):
    assert Colorizer.from_pretrained(str(model_file), device="cpu").source.kind == "file"


def with_a_hint_input(path, out, weight, **config):
    """A copy of a weights file as older versions wrote it: a hint input (`hints.conv.weight`, and `hints` and
    `chroma_gain` in its config), here with the given weight value."""
    import json
    from safetensors.torch import load_file, save_file
    _, _, meta = read_weights(path)
    tensors = {**load_file(str(path)), "hints.conv.weight": torch.full((16, 3, 3, 3), weight)}
    stored = {**json.loads(meta["config"]), "hints": True, "chroma_gain": 1.0, **config}
    save_file(tensors, str(out), metadata={**meta, "config": json.dumps(stored)})
    return out


def test_older_files_with_a_zero_hint_input_load_and_others_are_refused(model_file, tmp_path):
    """The hint input went (hints are held by propagation alone): its all-zero tensors, which added exactly
    nothing, are dropped; a non-zero one, or a chroma gain other than 1, would change the colours: refused."""
    model = load_model(str(model_file))[0]
    old = load_model(str(with_a_hint_input(model_file, tmp_path / "old.safetensors", 0.0)))[0]
    assert old.config == model.config and old.state_dict().keys() == model.state_dict().keys()
    with pytest.raises(WeightsError, match="non-zero"):
        read_weights(with_a_hint_input(model_file, tmp_path / "trained.safetensors", 0.1))
    with pytest.raises(WeightsError, match="chroma_gain"):
        read_weights(with_a_hint_input(model_file, tmp_path / "gain.safetensors", 0.0, chroma_gain=1.2))
