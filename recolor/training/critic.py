"""The critic (discriminator): a conditional PatchGAN with spectral norm and one self-attention block.

References:
- Isola et al., "Image-to-image translation with conditional adversarial networks" (pix2pix), CVPR 2017:
  the PatchGAN critic, which scores overlapping 70×70 patches (3 stride-2 layers) instead of whole images,
  so it judges local colour texture and costs little; conditional: it sees the input L with the chroma.
- Miyato et al., "Spectral normalization for generative adversarial networks", ICLR 2018: every conv's
  Lipschitz constant held at 1 instead of batch norm, which keeps the critic's gradients useful.
- Zhang et al., "Self-Attention GANs" (SAGAN), ICML 2019, and DeOldify's critic: self-attention after an
  early block lets distant patches agree (one sky, one colour).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..model import SelfAttention


@dataclass(frozen=True)
class CriticConfig:
    nf: int = 64  # width of the first layer, doubled at each downsample
    n_down: int = 3  # stride-2 layers; 3 gives pix2pix's 70×70 receptive field
    attention: bool = True  # self-attention after the second layer

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _sn_conv(ni: int, nf: int, stride: int) -> nn.Conv2d:
    return spectral_norm(nn.Conv2d(ni, nf, 4, stride, 1))


class Critic(nn.Module):
    """(L (B,1,H,W) in [0,100], ab (B,2,H,W)) -> patch logits (B, 1, H/2^n_down - 2, ...): real > 0 > fake."""

    def __init__(self, config: CriticConfig = CriticConfig()):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = [_sn_conv(3, config.nf, 2), nn.LeakyReLU(0.2, inplace=True)]
        width = config.nf
        for i in range(1, config.n_down):
            layers += [_sn_conv(width, width * 2, 2), nn.LeakyReLU(0.2, inplace=True)]
            width *= 2
            if i == 1 and config.attention:
                layers.append(SelfAttention(width))
        layers += [_sn_conv(width, width * 2, 1), nn.LeakyReLU(0.2, inplace=True), _sn_conv(width * 2, 1, 1)]
        self.body = nn.Sequential(*layers)

    def forward(self, l: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        x = torch.cat([l / 50.0 - 1.0, ab / 110.0], dim=1)  # Lab scaled to about [-1, 1]
        return self.body(x)
