"""Compute references: DeOldify's two photo generators rebuilt layer for layer, with random weights.

Speed does not depend on the weights, so these let the benchmark compare recolor with DeOldify on the same
machine, in the same process and through the same harness, without DeOldify's fastai-v1 stack.

Rebuilt from DeOldify's `deoldify/unet.py`, `deoldify/layers.py` and `deoldify/generators.py` (Antic, 2018-2020)
and fastai v1's `layers.py`:
- Stable (and Video): `DynamicUnetWide` on a ResNet101 body, nf_factor 2, blur, self-attention, spectral norm.
- Artistic: `DynamicUnetDeep` on a ResNet34 body, nf_factor 1.5, same options.
Both take RGB (the gray photo repeated), return 3 channels through a sigmoid y-range, and keep spectral norm
live at inference (fastai's hook renormalises the weight on every forward), as DeOldify does.

`check_parameter_counts()` asserts the rebuilds match DeOldify's weight files: 218.2M (Stable) and 63.6M
(Artistic) parameters, within 0.5%.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

EXPECTED_PARAMS = {"deoldify-stable": 218.2e6, "deoldify-artistic": 63.6e6}


# ------------------------------------------------------------------------------------------ fastai v1 layers
def custom_conv_layer(ni: int, nf: int, ks: int = 3, use_activ: bool = True, spectral: bool = True,
                      bn: bool = True, self_attention: bool = False) -> nn.Sequential:
    """DeOldify's custom_conv_layer with norm_type=Spectral: conv (spectral norm) -> ReLU -> BN (extra_bn)."""
    conv = nn.Conv2d(ni, nf, ks, padding=(ks - 1) // 2, bias=not bn)
    nn.init.kaiming_normal_(conv.weight)
    layers: list[nn.Module] = [parametrizations.spectral_norm(conv) if spectral else conv]
    if use_activ:
        layers.append(nn.ReLU(inplace=True))
    if bn:
        layers.append(nn.BatchNorm2d(nf))
    if self_attention:
        layers.append(SelfAttention(nf))
    return nn.Sequential(*layers)


class SelfAttention(nn.Module):
    """fastai v1 SelfAttention: spectral-normed 1×1 conv1d query/key/value, unscaled softmax, N×N matrix."""

    def __init__(self, n: int):
        super().__init__()
        self.query, self.key, self.value = (parametrizations.spectral_norm(nn.Conv1d(n, o, 1, bias=False))
                                            for o in (n // 8, n // 8, n))
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.size()
        x = x.view(*size[:2], -1)  # (B, C, N)
        f, g, h = self.query(x), self.key(x), self.value(x)
        beta = F.softmax(torch.bmm(f.transpose(1, 2), g), dim=1)  # (B, N, N): DeOldify materialises it
        return (self.gamma * torch.bmm(h, beta) + x).view(*size).contiguous()


class CustomPixelShuffleICNR(nn.Module):
    """1×1 conv (spectral, BN) to nf·4, ReLU, shuffle, replicate-pad + 2×2 average blur."""

    def __init__(self, ni: int, nf: int, blur: bool = True):
        super().__init__()
        self.conv = custom_conv_layer(ni, nf * 4, ks=1, use_activ=False)
        self.shuf, self.blur = nn.PixelShuffle(2), blur

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shuf(F.relu(self.conv(x)))
        return F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), 2, stride=1) if self.blur else x


class PixelShuffleICNR(nn.Module):
    """fastai v1 PixelShuffle_ICNR with its default weight norm (the final ×2 upsample), no blur."""

    def __init__(self, ni: int):
        super().__init__()
        self.conv = nn.utils.parametrizations.weight_norm(nn.Conv2d(ni, ni * 4, 1))
        self.shuf = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuf(self.conv(x))


class ResBlock(nn.Module):
    """fastai v1 res_block(nf, norm_type=Spectral): two 3×3 spectral convs with bias, then x + ..."""

    def __init__(self, nf: int):
        super().__init__()
        self.body = nn.Sequential(custom_conv_layer(nf, nf, bn=False), custom_conv_layer(nf, nf, bn=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


# ------------------------------------------------------------------------------------------ U-Net blocks
class UnetBlockWide(nn.Module):
    """Stable's block: upsample to n_out/2, concat the BN'd skip, ONE 3×3 conv to n_out/2."""

    def __init__(self, up_in: int, x_in: int, n_out: int, self_attention: bool):
        super().__init__()
        half = n_out // 2
        self.shuf = CustomPixelShuffleICNR(up_in, half)
        self.bn = nn.BatchNorm2d(x_in)
        self.conv = custom_conv_layer(half + x_in, half, self_attention=self_attention)

    def forward(self, up_in: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(F.relu(torch.cat([_match(self.shuf(up_in), skip), self.bn(skip)], dim=1)))


class UnetBlockDeep(nn.Module):
    """Artistic's block: upsample to up_in/2, concat the BN'd skip, TWO 3×3 convs widened by nf_factor."""

    def __init__(self, up_in: int, x_in: int, final_div: bool, self_attention: bool, nf_factor: float):
        super().__init__()
        self.shuf = CustomPixelShuffleICNR(up_in, up_in // 2)
        self.bn = nn.BatchNorm2d(x_in)
        ni = up_in // 2 + x_in
        nf = int((ni if final_div else ni // 2) * nf_factor)
        self.conv1 = custom_conv_layer(ni, nf)
        self.conv2 = custom_conv_layer(nf, nf, self_attention=self_attention)
        self.out_channels = nf

    def forward(self, up_in: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.relu(torch.cat([_match(self.shuf(up_in), skip), self.bn(skip)], dim=1))
        return self.conv2(self.conv1(x))


def _match(up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    return up if up.shape[-2:] == skip.shape[-2:] else F.interpolate(up, skip.shape[-2:], mode="nearest")


# ------------------------------------------------------------------------------------------ generators
class DeOldifyUnet(nn.Module):
    """fastai's DynamicUnet over a torchvision ResNet body: hooks after relu (s2), layer1..3; middle conv at s32."""

    def __init__(self, resnet: str, wide: bool, nf_factor: float):
        super().__init__()
        import torchvision.models as tvm
        r = tvm.get_model(resnet, weights=None)
        self.stem, self.pool = nn.Sequential(r.conv1, r.bn1, r.relu), r.maxpool
        self.layers = nn.ModuleList([r.layer1, r.layer2, r.layer3, r.layer4])
        skips = [64] + [layer[-1].conv3.out_channels if hasattr(layer[-1], "conv3") else layer[-1].conv2.out_channels
                        for layer in self.layers]  # s2, s4, s8, s16, s32
        ni = skips[-1]
        self.bottom = nn.Sequential(nn.BatchNorm2d(ni), nn.ReLU(),
                                    custom_conv_layer(ni, ni * 2), custom_conv_layer(ni * 2, ni))
        blocks, x = [], ni
        for i, skip in enumerate(reversed(skips[:-1])):  # s16, s8, s4, s2
            final, sa = i == 3, i == 1  # fastai: attention at len(sfs_idxs) - 3
            if wide:
                n_out = int(512 * nf_factor) // (2 if final else 1)
                blocks.append(UnetBlockWide(x, skip, n_out, sa))
                x = n_out // 2
            else:
                blocks.append(UnetBlockDeep(x, skip, not final, sa, nf_factor))
                x = blocks[-1].out_channels
        self.blocks = nn.ModuleList(blocks)
        self.final_up = PixelShuffleICNR(x)  # s2 -> full size
        self.res = ResBlock(x + 3)  # last_cross: concat the RGB input
        self.head = custom_conv_layer(x + 3, 3, ks=1, use_activ=False, bn=False)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        s2 = self.stem(rgb)
        feats, x = [s2], self.pool(s2)
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        x = self.bottom(x)
        for block, skip in zip(self.blocks, reversed(feats[:-1])):
            x = block(x, skip)
        x = torch.cat([self.final_up(x), rgb], dim=1)
        return torch.sigmoid(self.head(self.res(x))) * 6.0 - 3.0  # SigmoidRange(-3, 3)


class GrayAdapter(nn.Module):
    """Lets a reference run in recolor's engine: L (B, 1, H, W) -> gray RGB -> generator -> 2 channels.

    DeOldify feeds a 3-channel gray image and converts its 3-channel output to Lab afterwards; the conversion
    on the network output is tiny next to the network, so keeping two channels changes nothing measurable."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, l: torch.Tensor, hints: None = None) -> torch.Tensor:  # the engine passes hints=None
        return self.net((l / 100.0).expand(-1, 3, -1, -1))[:, :2]


REFERENCES = {
    "deoldify-stable": lambda: DeOldifyUnet("resnet101", wide=True, nf_factor=2),
    "deoldify-artistic": lambda: DeOldifyUnet("resnet34", wide=False, nf_factor=1.5),
}


def create_reference(name: str) -> nn.Module:
    """A reference generator with random weights, in eval mode, wrapped to take L like recolor's models."""
    if name not in REFERENCES:
        raise ValueError(f"unknown reference {name!r}; choose one of: {', '.join(REFERENCES)}")
    torch.manual_seed(0)
    return GrayAdapter(REFERENCES[name]()).eval()


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_parameter_counts() -> dict[str, int]:
    """Build both references and assert their sizes match DeOldify's released weights within 0.5%."""
    counts = {}
    for name, expected in EXPECTED_PARAMS.items():
        counts[name] = parameter_count(create_reference(name))
        assert abs(counts[name] / expected - 1) < 0.005, f"{name}: {counts[name] / 1e6:.1f}M params, expected {expected / 1e6:.1f}M"
    return counts


if __name__ == "__main__":
    for name, n in check_parameter_counts().items():
        print(f"{name}: {n / 1e6:.2f}M parameters (DeOldify: {EXPECTED_PARAMS[name] / 1e6:.1f}M)")
