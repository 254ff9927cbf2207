"""Encoders: ImageNet backbones from torchvision whose stem takes 1-channel L.

Contract (as in segmentation_models_pytorch): an encoder returns 5 feature maps at strides 2, 4, 8, 16, 32,
highest resolution first; the decoder (model.py) knows only their channel counts. ImageNet weights are read
from the torch hub cache with weights_only=True: nothing is downloaded at run time and no pickled code runs.
"""
from __future__ import annotations

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


def imagenet_state_dict(url: str) -> dict[str, torch.Tensor]:
    """The file torchvision would download from `url`, read from the torch hub cache
    ($TORCH_HOME/hub/checkpoints) with weights_only=True: nothing is downloaded and no pickled code runs
    (torchvision's own loader unpickles with weights_only=False)."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not path.is_file():
        raise PretrainedWeightsError(f"ImageNet weights not found: {path} (`make dev-weights` puts MobileNetV2's "
                                     f"there; for another network, download {url} to that path)")
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
