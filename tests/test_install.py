"""The install: the base is CPU inference without torch (pyproject.toml's extras), and a command that needs a
missing extra says which in one line. A missing package is simulated in a fresh interpreter by setting its
`sys.modules` entry to None, so the tests need no second environment."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXTRA_MODULES = ("torch", "torchvision", "onnx", "fastapi", "starlette", "uvicorn", "multipart", "python_multipart")


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def names(requirements: list[str]) -> set[str]:
    return {r.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].strip().lower()
            for r in requirements}


def test_the_base_install_is_cpu_inference_and_each_extra_brings_its_part():
    base, extras = names(project()["dependencies"]), project()["optional-dependencies"]
    assert {"onnxruntime", "opencv-python-headless", "numpy", "av", "typer", "safetensors"} <= base
    assert not base & {"torch", "torchvision", "onnx", "fastapi", "uvicorn", "python-multipart"}
    assert {"torch", "torchvision"} <= names(extras["torch"]) and {"torch", "onnx"} <= names(extras["train"])
    assert {"fastapi", "uvicorn", "python-multipart"} <= names(extras["serve"])
    assert names(extras["torch"]) | names(extras["train"]) | names(extras["serve"]) | {"pytest"} <= names(extras["dev"])


def test_the_model_card_is_not_installed_as_package_data():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert not any(p.endswith(".md") for p in setuptools["package-data"]["recolor.embedded"])
    assert "*.md" in setuptools["exclude-package-data"]["recolor.embedded"]  # nor through an old build's lists


def recolor(cwd: Path, *args: str, missing: tuple[str, ...] = EXTRA_MODULES) -> subprocess.CompletedProcess:
    """`recolor ARGS` in a fresh interpreter where the modules in `missing` cannot be imported."""
    code = (f"import sys\nfor m in {list(missing)!r}: sys.modules[m] = None\n"
            f"from recolor.cli import app\nsys.argv = ['recolor', *{list(args)!r}]\napp()")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_photos_and_film_need_no_extra(tmp_path):
    photo = ROOT / "examples" / "input" / "camera.png"
    done = recolor(tmp_path, "image", str(photo), "-o", "camera.png", "-r", "12", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert cv2.imread(str(tmp_path / "camera.png")).shape[:2] == cv2.imread(str(photo)).shape[:2]
    writer = cv2.VideoWriter(str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(6):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    done = recolor(tmp_path, "video", "clip.mp4", "-o", "out.mp4", "-r", "7", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.mp4").stat().st_size > 0


@pytest.mark.parametrize("args, extra", [
    (("serve", "--port", "0"), "serve"),
    (("train", "--data", ".", "--out", "run"), "train"),
    (("image", "x.png", "--runtime", "torch", "--device", "cpu"), "torch"),
])
def test_a_command_that_needs_a_missing_extra_names_it_in_one_line(tmp_path, args, extra):
    cv2.imwrite(str(tmp_path / "x.png"), np.full((32, 32), 128, np.uint8))
    done = recolor(tmp_path, *args)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert f"pip install 'recolor[{extra}]'" in lines[0]
    assert not list(tmp_path.glob("x_color*"))  # nothing was written


def test_models_lists_the_embedded_default_without_torch(tmp_path):
    done = recolor(tmp_path, "models")
    assert done.returncode == 0, done.stderr
    assert "recolor-small" in done.stdout and "the default" in done.stdout
    assert "pip install 'recolor[train]'" in done.stdout  # the architectures to train need the model code
