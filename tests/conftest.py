"""Fixtures: small images made here (scikit-image data, numpy) and an untrained model file.

An untrained generator is enough for everything but quality: its chroma is arbitrary, yet every invariant
(size, dtype, luminance, batching, files) must hold for any weights."""
from __future__ import annotations

import os

import numpy as np
import pytest

# Rich wraps its tables and lines at the terminal's width (COLUMNS): one width for every test, and for the
# commands they run in subprocesses, so the output is the same on every terminal and CI machine.
os.environ["COLUMNS"] = "200"


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    import torch
    from recolor.model import ModelConfig, create_model
    from recolor.weights import save_weights
    torch.manual_seed(0)
    model = create_model(ModelConfig())  # MobileNetV2, regressing a/b: small and quick
    with torch.no_grad():  # a visible, non-zero chroma so the tests see colour, and out-of-gamut cases
        model.head.bias.copy_(torch.tensor([0.3, 0.4]))
    return save_weights(model, tmp_path_factory.mktemp("models") / "tiny.safetensors", half=False)


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory):
    """ONNX exports go to a folder of this run, not the user's ~/.cache (subprocesses inherit it)."""
    import os
    os.environ["RECOLOR_CACHE"] = str(tmp_path_factory.mktemp("recolor-cache"))


@pytest.fixture(scope="session")
def colorizer(model_file):
    """The torch runtime (the engine's GPU path, run on the CPU); `onnx_colorizer` is the CPU default."""
    from recolor.engine import Colorizer
    return Colorizer.from_pretrained(str(model_file), device="cpu", runtime="torch")


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real photograph (scikit-image's coffee, CC0), RGB uint8, 400×600."""
    from skimage import data
    return data.coffee()


@pytest.fixture(scope="session")
def gray_photo() -> np.ndarray:
    """A real black-and-white photograph (scikit-image's camera, CC0), 512×512 uint8."""
    from skimage import data
    return data.camera()


# The browser tests' Chromium and page, for any module that defines a `server` fixture (tests/browser.py).
@pytest.fixture(scope="module")
def browser(server):
    from browser import offline_browser
    with offline_browser() as browser:
        yield browser


@pytest.fixture
def web(browser, server):
    from browser import Page
    page = Page(browser, server)
    yield page
    page.page.context.close()
    assert page.elsewhere == []  # the page never leaves the machine
