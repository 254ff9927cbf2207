import subprocess
import sys

import cv2
import numpy as np
import pytest

from recolor import color
from recolor.engine import Colorizer
from recolor.runners import pick_device


def l_of(image: np.ndarray) -> np.ndarray:
    return color.luminance(image)


@pytest.mark.parametrize("kind", ["gray", "rgb", "rgba", "gray16", "rgb16", "float"])
def test_shapes_dtypes_and_luminance_for_every_input_kind(colorizer, photo, kind):
    gray = color.to_uint8(color.luminance(photo)[:, :, None].repeat(3, 2) / 100)[:, :, 0]
    image = {
        "gray": gray,
        "rgb": photo,
        "rgba": np.dstack([photo, np.linspace(0, 255, photo.shape[1], dtype=np.uint8)[None].repeat(photo.shape[0], 0)]),
        "gray16": gray.astype(np.uint16) * 257 + 100,
        "rgb16": photo.astype(np.uint16) * 257,
        "float": photo.astype(np.float32) / 255,
    }[kind]
    out = colorizer.colorize(image, render_factor=12)
    assert out.dtype == np.uint8 and out.shape[:2] == image.shape[:2]
    assert out.shape[2] == (4 if kind == "rgba" else 3)
    if kind == "rgba":
        assert np.array_equal(out[:, :, 3], image[:, :, 3])  # alpha kept exactly
    # the invariant: output luminance is the input's, within 8-bit rounding
    assert np.abs(l_of(out[:, :, :3]) - l_of(image)).max() < 1.0
    assert np.abs(out[:, :, 0].astype(int) - out[:, :, 2]).mean() > 1  # it did add colour


def test_colour_input_is_recoloured_from_its_luminance(colorizer, photo):
    gray = color.merge_l_ab(l_of(photo), np.zeros((8, 8, 2), np.float32))  # same L, no chroma
    from_colour, from_gray = colorizer.colorize_batch([photo, gray], 12)
    assert np.abs(l_of(from_colour) - l_of(photo)).max() < 1.0
    assert np.abs(from_colour.astype(int) - from_gray).mean() < 1.0  # the input's chroma played no part


@pytest.mark.parametrize("h, w", [(1, 1), (7, 300), (33, 65)])
def test_tiny_and_odd_sizes(colorizer, h, w):
    image = np.random.default_rng(0).integers(0, 255, (h, w), dtype=np.uint8)
    out = colorizer.colorize(image, 7)
    assert out.shape == (h, w, 3)


def test_render_factor_bounds(colorizer, gray_photo):
    for rf in (6, 65):
        with pytest.raises(ValueError, match="render factor"):
            colorizer.colorize(gray_photo, rf)


def test_batch_equals_one_by_one(colorizer, photo, gray_photo):
    images = [photo, gray_photo, photo[:200, :300], gray_photo[::2]]
    batched = colorizer.colorize_batch(images, render_factor=10, batch_size=3)
    for image, out in zip(images, batched):
        alone = colorizer.colorize(image, 10)
        assert np.abs(alone.astype(int) - out).max() <= 2


def test_render_factor_changes_what_the_network_sees(colorizer, gray_photo, monkeypatch):
    seen = []
    real = colorizer.predict_ab
    monkeypatch.setattr(colorizer, "predict_ab", lambda l: seen.append(l.shape) or real(l))
    colorizer.colorize(gray_photo, 10)
    colorizer.colorize(gray_photo, 20)
    assert seen == [(1, 160, 160), (1, 320, 320)]


def test_out_of_memory_retries_smaller_with_a_warning(colorizer, gray_photo, monkeypatch, caplog):
    import torch
    real = colorizer.predict_ab

    def limited(l):  # a device that fits one image of at most 160×160
        if l.shape[0] > 1 or l.shape[1] * l.shape[2] > 160 * 160:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(l)

    monkeypatch.setattr(colorizer, "predict_ab", limited)
    with caplog.at_level("WARNING", logger="recolor"):
        outs = colorizer.colorize_batch([gray_photo, gray_photo], render_factor=14, batch_size=2)
    assert all(o.shape == (512, 512, 3) for o in outs)
    assert "retrying in halves" in caplog.text and "render factor 14" in caplog.text
    assert np.abs(outs[0][:, :, 0].astype(int) - outs[0][:, :, 2]).mean() > 1  # colour, not gray


def test_auto_device_is_cpu_here_and_missing_devices_are_errors():
    import torch
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            pick_device("cuda")


def test_default_model_loads_and_colours(gray_photo):
    colorizer = Colorizer.from_pretrained("default", device="cpu")
    out = colorizer.colorize(gray_photo, 16)
    assert out.shape == (512, 512, 3)
    assert np.abs(l_of(out) - l_of(gray_photo)).max() < 1.0


def test_public_api_imports_lazily():
    import subprocess
    import sys
    code = ("import sys, recolor\nassert 'torch' not in sys.modules\n"
            "from recolor import Colorizer, colorize_image, create_model, load_model, save_weights\n"
            "assert 'torch' in sys.modules and callable(colorize_image)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr


def test_bf16_on_cpu_keeps_luminance_exact_and_chroma_close(model_file, colorizer, photo):
    """bf16 autocast only touches the network: the output L is still the input's, chroma moves a little."""
    bf16 = Colorizer.from_pretrained(str(model_file), device="cpu", precision="bf16")
    out = bf16.colorize(photo, 12)
    assert np.abs(l_of(out) - l_of(photo)).max() < 1.0
    l = l_of(photo)
    ab16, ab32 = bf16.chroma([l], 12)[0], colorizer.chroma([l], 12)[0]
    assert ab16.dtype == np.float32 and np.abs(ab16 - ab32).mean() < 1.0


def test_unknown_runtime_and_onnx_with_autocast_are_errors(model_file):
    with pytest.raises(ValueError, match="unknown runtime"):
        Colorizer.from_pretrained(str(model_file), device="cpu", runtime="tensorrt")
    with pytest.raises(ValueError, match="fp32 on the CPU"):
        Colorizer.from_pretrained(str(model_file), device="cpu", precision="bf16", runtime="onnx")


def test_onnx_runtime_matches_torch_and_exports_once(model_file, colorizer, photo, tmp_path, monkeypatch):
    monkeypatch.setenv("RECOLOR_CACHE", str(tmp_path))
    onnx = Colorizer.from_pretrained(str(model_file), device="cpu", runtime="onnx")
    l = np.stack([l_of(photo)[:96, :160], l_of(photo)[100:196, :160]])  # (2, 96, 160): batch and a non-square size
    assert np.abs(onnx.predict_ab(l) - colorizer.predict_ab(l)).max() < 1e-2
    out = onnx.colorize(photo, 12)
    assert np.abs(l_of(out) - l_of(photo)).max() < 1.0
    exported = list((tmp_path / "onnx").glob("*.onnx"))
    assert len(exported) == 1
    stamp = exported[0].stat().st_mtime_ns
    Colorizer.from_pretrained(str(model_file), device="cpu", runtime="onnx")  # cached: no second export
    assert exported[0].stat().st_mtime_ns == stamp


def test_onnx_cache_key_follows_everything_that_shapes_the_graph(colorizer, model_file, tmp_path, monkeypatch):
    from recolor import onnx_runtime
    model = colorizer.runner.model
    key = onnx_runtime._key(model, model_file)
    assert onnx_runtime._key(model, model_file) == key
    edited = tmp_path / "model.py"
    edited.write_text(onnx_runtime.MODEL_CODE[0].read_text() + "\n# a changed decoder\n")
    with monkeypatch.context() as m:
        m.setattr(onnx_runtime, "MODEL_CODE", (edited, *onnx_runtime.MODEL_CODE[1:]))
        assert onnx_runtime._key(model, model_file) != key
    with monkeypatch.context() as m:
        m.setattr(onnx_runtime, "_torch_version", lambda: "0.0.1")
        assert onnx_runtime._key(model, model_file) != key
    other = tmp_path / "other.safetensors"
    other.write_bytes(model_file.read_bytes() + b" ")
    assert onnx_runtime._key(model, other) != key


def test_shipped_graph_is_todays_model_and_runs_without_torch(gray_photo, tmp_path):
    """The embedded default's graph: the same operators as an export of today's model code, the same output as
    the torch model, and `recolor image` on the CPU never imports torch."""
    import onnx
    from recolor.onnx_runtime import OnnxModel, export
    from recolor.weights import load_model, resolve
    source = resolve("default")
    shipped = onnx.load(str(source.path.with_suffix(".onnx")), load_external_data=False)
    model = load_model("default")[0]
    fresh = onnx.load(str(export(model, tmp_path / "fresh.onnx", fold=False)))  # tensors not folded, as shipped
    ops = lambda g: [(n.op_type, [str(a) for a in n.attribute]) for n in g.graph.node if n.op_type != "Cast"]
    assert ops(shipped) == ops(fresh), "weights/*.onnx is stale: run recolor.onnx_runtime.write_graph"
    ort = OnnxModel.for_weights(source.path)
    assert ort.path == source.path.with_suffix(".onnx")
    l = l_of(gray_photo)[None, None, :224, :320].astype(np.float32)
    import torch
    with torch.no_grad():
        # a/b units: the export decodes the colour bins through a 1×1 conv, torch through softmax + einsum
        # (ab_classes.annealed_mean), so fp32 sums run in another order (1.3e-3 measured; a wrong graph is units off)
        assert np.abs(ort(l) - model(torch.from_numpy(l)).numpy()).max() < 1e-2
    cv2.imwrite(str(tmp_path / "in.jpg"), gray_photo)
    code = ("import sys, runpy; sys.argv = ['recolor', 'image', sys.argv[1], '-r', '10', '--device', 'cpu']\n"
            "try:\n    runpy.run_module('recolor', run_name='__main__')\nexcept SystemExit as e:\n    assert not e.code\n"
            "assert 'torch' not in sys.modules")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "in.jpg")], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert cv2.imread(str(tmp_path / "in_color.jpg")).shape == (512, 512, 3)


def test_a_graph_made_for_other_weights_is_not_used(model_file, tmp_path):
    import shutil
    from recolor.onnx_runtime import OnnxModel, write_graph
    weights = tmp_path / "m.safetensors"
    shutil.copy(model_file, weights)
    graph = write_graph(weights)
    assert OnnxModel.for_weights(weights).path == graph
    from recolor.weights import load_model, save_weights
    model = load_model(str(model_file))[0]
    with __import__("torch").no_grad():
        model.head.bias.add_(1.0)
    save_weights(model, weights, half=False)  # retrained: the graph beside it no longer describes it
    assert OnnxModel.for_weights(weights).path != graph


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_the_callers_model_is_left_as_it_was_given(model_file, runtime, gray_photo):
    """Training validates the model it is training: the engine must not switch its mode, device or layout."""
    import torch
    from recolor.weights import load_model
    model = load_model(str(model_file))[0].train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    conv = model.final_res.body[0][0]  # a 3×3 conv: channels-last would change its strides
    Colorizer.from_model(model, "cpu", runtime=runtime).colorize(gray_photo, 8)
    assert model.training and all(m.training for m in model.modules())
    assert conv.weight.is_contiguous() and not conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_every_model_takes_hints_and_holds_them(model_file, runtime, gray_photo):
    """The test model was built without any hint input: propagation alone holds a hint, in both runtimes."""
    from recolor.hints import Hint
    colorizer = Colorizer.from_pretrained(str(model_file), device="cpu", runtime=runtime)
    hint = Hint(256, 100, (-5.0, -30.0))  # sky blue, inside the gamut at the sky's luminance
    out = colorizer.colorize(gray_photo, 10, hints=[hint])
    plain = colorizer.colorize(gray_photo, 10)
    lab = lambda rgb: color.rgb_to_lab(rgb[99:102, 255:258].astype(np.float32) / 255)  # noqa: E731
    spot, before = lab(out)[..., 1:].mean((0, 1)), lab(plain)[..., 1:].mean((0, 1))
    distance = lambda ab: float(np.hypot(*(ab - hint.ab)))  # noqa: E731
    assert distance(spot) < 0.7 * distance(before), (spot, before)  # towards the hint (gamut-clipped in the sky)


def test_both_runners_answer_the_engine_alike(colorizer, model_file, photo):
    """One pipeline over two runners: the same interface, the same a/b within fp32 rounding."""
    onnx = Colorizer.from_pretrained(str(model_file), device="cpu", runtime="onnx")
    assert (colorizer.runtime, onnx.runtime) == ("torch", "onnx")
    l = np.stack([l_of(photo)[:64, :96]] * 3)  # (3, 64, 96)
    for c in (colorizer, onnx):
        assert c.runner.predict(l).shape == (3, 64, 96, 2)
        with c.share_cores():
            c.runner.free_memory()
    assert onnx.runner.out_of_memory == () and colorizer.runner.out_of_memory
    assert np.abs(onnx.chroma([l_of(photo)], 10)[0] - colorizer.chroma([l_of(photo)], 10)[0]).max() < 1e-2
