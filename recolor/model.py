"""The generator: a DeOldify-style U-Net that predicts CIE a/b chroma from L.

References:
- Ronneberger et al., "U-Net", 2015 (encoder/decoder with skip connections).
- Antic, DeOldify, 2018-2020 (pretrained ImageNet encoder, PixelShuffle decoder, self-attention, spectral norm).
- Shi et al., "Sub-pixel convolution" 2016 and Aitken et al., "Checkerboard artifact free sub-pixel
  convolution" (ICNR init) 2017; blur after shuffle as in fastai's PixelShuffle_ICNR.
- Zhang et al., "Self-Attention GANs" (SAGAN), 2019; Miyato et al., "Spectral Normalization", 2018.

The encoders (ImageNet backbones with a 1-channel stem) are in encoders.py: they return 5 feature maps at strides
2, 4, 8, 16, 32, and the decoder here knows only their channel counts. `create_model` is the only constructor.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .ab_classes import annealed_mean, bin_centres
from .color import AB_SCALE
from .encoders import Encoder

L_MEAN, L_STD = 0.449, 0.226  # ImageNet mean/std averaged over RGB, for L/100 fed to a 1-channel stem


# ---------------------------------------------------------------------------------------------- decoder
def conv_relu(ni: int, nf: int, ks: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(ni, nf, ks, padding=ks // 2), nn.ReLU(inplace=True))


def icnr_(weight: torch.Tensor, scale: int = 2) -> None:
    """ICNR init: every sub-pixel of the shuffle starts with the same kernel, so the upsample starts as
    nearest-neighbour and has no checkerboard (Aitken et al. 2017)."""
    nf, ni, h, w = weight.shape
    sub = torch.empty(nf // scale**2, ni, h, w)
    nn.init.kaiming_normal_(sub)
    with torch.no_grad():
        weight.copy_(sub.repeat_interleave(scale**2, dim=0))


class PixelShuffleUp(nn.Module):
    """×2 upsample: 1×1 conv to 4·nf channels, pixel shuffle, then a 2×2 blur against checkerboard.

    The conv + shuffle runs as the one stride-2 transposed conv it equals (each input pixel writes its own 2×2
    block; the conv's 4·nf biases, one per channel and sub-pixel, ride on an extra all-ones input channel):
    ONNX Runtime's DepthToSpace is a slow copy (17% of the CPU network time at film size), and torch is no
    slower this way. The parameters keep the conv's shape, so weights files are unchanged."""

    def __init__(self, ni: int, nf: int, blur: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(ni, nf * 4, 1)
        icnr_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.blur = blur

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nf4, ni = self.conv.weight.shape[:2]
        # pixel shuffle's channel c·4 + 2i + j lands at sub-pixel (i, j) of channel c
        weight = self.conv.weight.reshape(nf4 // 4, 2, 2, ni).permute(3, 0, 1, 2)  # (ni, nf, 2, 2)
        bias = self.conv.bias.reshape(1, nf4 // 4, 2, 2)
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        x = F.relu(F.conv_transpose2d(x, torch.cat([weight, bias]), stride=2))
        if self.blur:  # replicate-pad then 2×2 average: keeps size, smooths the shuffle grid
            x = F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), 2, stride=1)
        return x


class SelfAttention(nn.Module):
    """SAGAN self-attention; gamma starts at 0 so a new block is an identity.

    grid: keys and values come from a grid × grid copy of the features, so each position attends over as many
    as in training whatever the render size. Over every position of a render larger than the training crops
    (35 × 35 at rf 35 against 14 × 14 at 224 px) the softmax spread one colour, the warm of a face, over white
    hair and backdrops (research/model-notebook.md, step 28). None: every position, as the older models ran."""

    def __init__(self, channels: int, grid: int | None = None):
        super().__init__()
        self.query = nn.Conv1d(channels, channels // 8, 1, bias=False)
        self.key = nn.Conv1d(channels, channels // 8, 1, bias=False)
        self.value = nn.Conv1d(channels, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.grid = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.flatten(2)  # (B, C, N)
        context = flat if self.grid is None else box_resize(x, self.grid).flatten(2)
        q, k, v = self.query(flat), self.key(context), self.value(context)
        # SDPA picks a fused kernel; SAGAN's softmax is unscaled, so pass scale=1.
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale=1.0)
        return x + self.gamma * out.transpose(1, 2).reshape(b, c, h, w)


def box_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, size, size), each output the mean of the input area it covers (a box filter, as
    "area" interpolation, up or down). Two matrix products built from the input's shape, so one ONNX export
    serves every size: ONNX has no adaptive pooling, so interpolate's area mode exports as a pooling fixed to
    the traced size, and bilinear samples a few positions instead of averaging them all."""
    return torch.einsum("ih,bchw,jw->bcij", box_matrix(x.shape[2], size, x), x, box_matrix(x.shape[3], size, x))


def box_matrix(n: int, size: int, like: torch.Tensor) -> torch.Tensor:
    """(size, n): row i averages input positions [i·n/size, (i+1)·n/size), fractions of a position included."""
    edges = torch.arange(size + 1, dtype=like.dtype, device=like.device) * n / size
    pos = torch.arange(n, device=like.device).to(like.dtype)
    overlap = torch.minimum(pos + 1, edges[1:, None]) - torch.maximum(pos, edges[:-1, None])
    return overlap.clamp(min=0) * size / n


class UpBlock(nn.Module):
    """Upsample the deeper features, concatenate the (batch-normed) skip, two 3×3 convs."""

    def __init__(self, up_in: int, skip_in: int, out: int, blur: bool, attention: bool,
                 attention_grid: int | None = None):
        super().__init__()
        self.up = PixelShuffleUp(up_in, up_in // 2, blur)
        self.skip_bn = nn.BatchNorm2d(skip_in)
        self.conv1 = conv_relu(up_in // 2 + skip_in, out)
        self.conv2 = conv_relu(out, out)
        self.attention = SelfAttention(out, attention_grid) if attention else nn.Identity()

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.up(x), self.skip_bn(skip)], dim=1)
        return self.attention(self.conv2(self.conv1(F.relu(x))))


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_relu(channels, channels), conv_relu(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ClassHead(nn.Module):
    """Stride-4 features (+ L) -> logits over the a/b bins of ab_classes (Zhang et al. 2016's 1×1 head, with one
    3×3 conv for context). Its convs take no spectral norm: it would cap the logits and so how sure the
    distribution can be."""

    def __init__(self, channels: int, width: int = 128):
        super().__init__()
        centres = bin_centres()
        self.register_buffer("centres", centres)
        self.net = nn.Sequential(conv_relu(channels, width), conv_relu(width, width, 1),
                                 nn.Conv2d(width, len(centres), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# ---------------------------------------------------------------------------------------------- generator
@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a generator; stored in every weights file."""
    encoder: str = "mobilenet_v2"
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32)  # blocks at strides 16, 8, 4, 2
    middle_expansion: int = 2  # bottleneck convs widen by this factor (0: no middle block)
    attention: bool = True  # self-attention after the stride-16 decoder block
    attention_grid: int | None = None  # its keys and values from this many positions a side (SelfAttention)
    spectral_norm: bool = True  # applied to decoder convs while training (baked into saved weights)
    blur: bool = True
    # width at full resolution before the a/b head; + L makes 16, a multiple of ORT's blocked-conv width (16 on
    # AVX-512, 8 on AVX2): with 17 the whole network ran 1.10-1.15× slower (benchmarks/head_levers.py)
    head_channels: int = 15
    # classify a/b into bins at stride 4 and decode the annealed mean (ab_classes.py, Zhang et al. 2016) instead
    # of regressing a/b at full resolution; temperature: the annealing (1: the mean, towards 0: the mode);
    # confidence_gain: (confidence, gain) knots that scale the colour by how sure the model is of it
    # (ab_classes.curve_gain): gray where it is unsure, strong where it is sure (both chosen on val_ood)
    colour_classes: bool = False
    temperature: float = 0.38
    confidence_gain: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self):
        curve = self.confidence_gain
        if curve is not None and not (len(curve) >= 2 and all(0 <= c <= 1 and g >= 0 for c, g in curve)
                                      and all(a[0] < b[0] for a, b in zip(curve, curve[1:]))):
            raise ValueError(f"confidence_gain needs 2 or more (confidence, gain) knots, confidence rising in "
                             f"[0, 1], gains >= 0; got {curve}")
        if self.attention_grid is not None and self.attention_grid < 1:
            raise ValueError(f"attention_grid must be a positive number of positions; got {self.attention_grid}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        d = dict(d)
        if "decoder_channels" in d:
            d["decoder_channels"] = tuple(d["decoder_channels"])
        if d.get("confidence_gain") is not None:
            d["confidence_gain"] = tuple(tuple(knot) for knot in d["confidence_gain"])
        return cls(**d)


class Generator(nn.Module):
    """L (B, 1, H, W) in [0, 100], H and W multiples of 32 -> ab (B, 2, H, W).

    Colour hints are not an input: propagation.py makes the network's a/b agree with them, for every model. A
    hint input (Zhang et al. 2017) was trained and measured: alone it barely moved ΔE (10 hints: 9.762 -> 9.750
    on 100 val_ood photos), and trained it spread each hint itself, so propagation found less to hold; every
    model shipped or trained since had it at zero (research/model-notebook.md). weights.py drops its all-zero
    tensors from older files."""

    def __init__(self, config: ModelConfig, pretrained_encoder: bool = False):
        super().__init__()
        if len(config.decoder_channels) != 4:
            raise ValueError("decoder_channels needs 4 widths (strides 16, 8, 4, 2)")
        self.config = config
        self.encoder = Encoder(config.encoder, pretrained_encoder)
        skips = self.encoder.channels  # (s2, s4, s8, s16, s32)
        deep = skips[-1]
        if config.middle_expansion:
            wide = deep * config.middle_expansion
            self.middle = nn.Sequential(nn.BatchNorm2d(deep), nn.ReLU(), conv_relu(deep, wide), conv_relu(wide, deep))
        else:
            self.middle = nn.Identity()
        blocks, up_in = [], deep
        widths = config.decoder_channels[:3] if config.colour_classes else config.decoder_channels  # to stride 4
        for i, (skip, out) in enumerate(zip(reversed(skips[:-1]), widths)):
            blocks.append(UpBlock(up_in, skip, out, config.blur, attention=config.attention and i == 0,
                                  attention_grid=config.attention_grid))
            up_in = out
        self.blocks = nn.ModuleList(blocks)
        if config.colour_classes:
            self.classes = ClassHead(up_in + 1)  # + L at stride 4
            return
        self.final_up = PixelShuffleUp(up_in, config.head_channels, config.blur)
        self.final_res = ResBlock(config.head_channels + 1)  # + the input L, as DeOldify's last_cross
        self.head = nn.Conv2d(config.head_channels + 1, 2, 1)

    def forward(self, l: torch.Tensor, with_logits: bool = False):
        """-> ab; with_logits (training a colour_classes model): (ab, the bin logits at stride 4)."""
        x = (l / 100.0 - L_MEAN) / L_STD
        features = self.encoder(x)
        y = self.middle(features[-1])
        for block, skip in zip(self.blocks, reversed(features[:-1])):
            y = block(y, skip)
        if self.config.colour_classes:
            return self.classify(y, x, with_logits)
        y = torch.cat([self.final_up(y), x], dim=1)
        return self.head(self.final_res(y)) * AB_SCALE

    def classify(self, y, x, with_logits: bool):
        """Stride-4 features -> bin logits -> annealed mean -> a/b upsampled to the input's size (chroma is
        smooth; the engine upsamples it further anyway)."""
        y = torch.cat([y, F.avg_pool2d(x, 4)], dim=1)
        logits = self.classes(y)
        ab = annealed_mean(logits, self.classes.centres, self.config.temperature, curve=self.config.confidence_gain)
        ab = F.interpolate(ab, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return (ab, logits) if with_logits else ab


def decoder_convs(model: Generator) -> list[nn.Conv2d]:
    """The convolutions spectral norm applies to: the decoder's, not the pretrained (batch-normed) encoder's, nor
    the class head's (ClassHead)."""
    return [m for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and not name.startswith(("encoder.", "classes."))]


def apply_spectral_norm(model: Generator) -> Generator:
    for conv in decoder_convs(model):
        torch.nn.utils.parametrizations.spectral_norm(conv)
    return model


def inference_state_dict(model: Generator) -> dict[str, torch.Tensor]:
    """State dict with spectral norm baked in: each parametrized conv's normalized weight under its plain key.

    Computed in eval mode, so no power iteration runs and the training state is left exactly as it was."""
    from torch.nn.utils import parametrize
    was_training = model.training
    model.eval()
    with torch.no_grad():
        state = {k: v for k, v in model.state_dict().items() if ".parametrizations." not in k}
        for name, module in model.named_modules():
            if parametrize.is_parametrized(module, "weight"):
                state[f"{name}.weight"] = module.weight.detach().clone()
    model.train(was_training)
    return state


# ---------------------------------------------------------------------------------------------- registry
MODELS: dict[str, ModelConfig] = {
    # the shipped default's architecture and decoding (weights/recolor-small.safetensors is this, trained)
    "recolor-small": ModelConfig(encoder="efficientnet_lite2", colour_classes=True, attention_grid=14,
                                 confidence_gain=((0.1, 0.0), (0.3, 1.1), (0.45, 0.85))),
}


def create_model(name_or_config: str | ModelConfig = "recolor-small", pretrained_encoder: bool = False) -> Generator:
    """The one way to build a generator: by registered name or from a ModelConfig."""
    if isinstance(name_or_config, ModelConfig):
        return Generator(name_or_config, pretrained_encoder)
    if name_or_config not in MODELS:
        raise ValueError(f"unknown model {name_or_config!r}; choose one of: {', '.join(MODELS)}")
    return Generator(MODELS[name_or_config], pretrained_encoder)
