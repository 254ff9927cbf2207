"""Training losses: pixel loss on chroma, perceptual (feature) loss on RGB, and the hinge adversarial loss.

References:
- Johnson, Alahi & Fei-Fei, "Perceptual losses for real-time style transfer and super-resolution", ECCV 2016:
  the feature reconstruction loss, a distance between activations of a fixed ImageNet network.
- Antic, DeOldify (2018-2020): its `FeatureLoss` (L1 on three VGG16-bn blocks + pixel L1) is what makes
  colour vivid rather than the "average brown" that a pixel loss alone regresses to.
- Lim & Ye, "Geometric GAN" 2017 and Zhang et al., "Self-Attention GANs" (SAGAN) 2019: the hinge loss used
  with spectral norm (Miyato et al. 2018) and two time-scale updates (Heusel et al. 2017).

The perceptual network is chosen by name: `vgg16_bn` (Johnson's and DeOldify's choice) where its ImageNet
weights can be had, else `mobilenet_v2`, whose weights exist offline (see NOTES); `none` turns it off.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..color import D65_WHITE, XYZ_TO_SRGB
from ..metrics import COLOURFULNESS_MEAN_WEIGHT, COLOURFULNESS_SCALE
from ..encoders import PretrainedWeightsError, torchvision_model

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def lab_to_rgb(l: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Differentiable CIE Lab -> sRGB: L (B, 1, H, W) in [0, 100], ab (B, 2, H, W) -> RGB (B, 3, H, W) in [0, 1].

    Out-of-gamut colours are clipped in linear RGB (their gradient then vanishes, which is the right push:
    nothing to gain from going further out of gamut)."""
    l, ab = l.float(), ab.float()
    fy = (l + 16.0) / 116.0
    f = torch.cat([fy + ab[:, :1] / 500.0, fy, fy - ab[:, 1:] / 200.0], dim=1)
    xyz = torch.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29))
    # the engine's sRGB (D65) constants, as OpenCV uses them: training and inference agree
    xyz = xyz * torch.from_numpy(D65_WHITE).to(l.device).view(1, 3, 1, 1)
    lin = torch.einsum("ij,bjhw->bihw", torch.from_numpy(XYZ_TO_SRGB).to(l.device), xyz).clamp(0.0, 1.0)
    # the sRGB curve; the clamp keeps pow's gradient finite at 0
    return torch.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin.clamp_min(1e-6) ** (1 / 2.4) - 0.055)


def pixel_loss(pred_ab: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Smooth L1 on ab/100 (beta 0.02 ≈ 2 Lab units: L2 near the target, L1 beyond, as in Fast R-CNN)."""
    return F.smooth_l1_loss(pred_ab.float() / 100.0, ab.float() / 100.0, beta=0.02)


def colourfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Hasler & Süsstrunk's colourfulness M per image of RGB (B, 3, H, W) in [0, 1], on their 0-255 scale:
    the same formula as `metrics.colourfulness`, differentiable (the eps keeps sqrt's gradient finite)."""
    r, g, b = (rgb.float() * COLOURFULNESS_SCALE).unbind(1)
    rg, yb = (r - g).flatten(1), (0.5 * (r + g) - b).flatten(1)
    spread = (rg.var(1, unbiased=False) + yb.var(1, unbiased=False) + 1e-6).sqrt()
    return spread + COLOURFULNESS_MEAN_WEIGHT * (rg.mean(1) ** 2 + yb.mean(1) ** 2 + 1e-6).sqrt()


def colourfulness_loss(pred_rgb: torch.Tensor, true_rgb: torch.Tensor) -> torch.Tensor:
    """|M(pred) - M(true)| / 100, averaged over the batch: a per-photo statistic to match, not a per-pixel
    target. A pixel loss alone regresses to the mean (muddy brown, gray skies); this asks each prediction to
    be as colourful as its own ground truth while the pixel and feature losses decide which colours go where
    (a cheap, stable cousin of the adversarial loss's push towards the statistics of real photos)."""
    return (colourfulness(pred_rgb) - colourfulness(true_rgb).detach()).abs().mean() / 100.0


# ---------------------------------------------------------------------------------------------- perceptual
@dataclass(frozen=True)
class PerceptualSpec:
    build: Callable[[bool], nn.Module]  # pretrained -> torchvision model with a `features` Sequential
    layers: tuple[int, ...]  # indices into `features` whose outputs are compared
    weights: tuple[float, ...]  # per layer; they roughly equalise the layers' mean activation sizes


PERCEPTUAL: dict[str, PerceptualSpec] = {
    # outputs at strides 4, 8, 16 (inverted-residual blocks 3, 6, 13)
    "mobilenet_v2": PerceptualSpec(torchvision_model("mobilenet_v2", "IMAGENET1K_V1"), (3, 6, 13), (1.0, 1.0, 1.0)),
    # DeOldify's choice: the ReLUs before the 3rd, 4th and 5th max-pools, weights 20, 70, 10 (scaled)
    "vgg16_bn": PerceptualSpec(torchvision_model("vgg16_bn", "IMAGENET1K_V1"), (22, 32, 42), (0.2, 0.7, 0.1)),
}


class PerceptualWeightsError(RuntimeError):
    """The ImageNet weights of the perceptual network cannot be loaded here."""


class FeatureLoss(nn.Module):
    """Johnson et al.'s feature reconstruction loss: weighted L1 between activations of a frozen ImageNet
    network on the predicted and the true RGB image. `pretrained=False` (tests only) uses random weights."""

    def __init__(self, name: str = "mobilenet_v2", pretrained: bool = True):
        super().__init__()
        if name not in PERCEPTUAL:
            raise ValueError(f"unknown perceptual network {name!r}; choose one of: {', '.join(PERCEPTUAL)}, none")
        self.spec = PERCEPTUAL[name]
        try:
            net = self.spec.build(pretrained)
        except PretrainedWeightsError as e:  # not in the torch hub cache, or not a plain state dict
            raise PerceptualWeightsError(f"cannot load ImageNet weights for the perceptual network {name}: {e}; "
                                         f"or use --perceptual mobilenet_v2 / none") from None
        self.features = net.features[: max(self.spec.layers) + 1].eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "FeatureLoss":
        return super().train(False)  # always eval: batch norm keeps its ImageNet statistics

    def activations(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        x, out = (rgb - self.mean) / self.std, []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.spec.layers:
                out.append(x)
        return out

    def forward(self, pred_rgb: torch.Tensor, true_rgb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # the target's activations need no graph: half the backward cost
            targets = self.activations(true_rgb)
        loss = pred_rgb.new_zeros(())
        for w, p, t in zip(self.spec.weights, self.activations(pred_rgb), targets):
            loss = loss + w * F.l1_loss(p.float(), t.float())
        return loss


# ---------------------------------------------------------------------------------------------- adversarial
def critic_hinge_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge loss for the critic: mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))."""
    return F.relu(1.0 - real_logits.float()).mean() + F.relu(1.0 + fake_logits.float()).mean()


def generator_hinge_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's side of the hinge loss: -mean(D(fake))."""
    return -fake_logits.float().mean()
