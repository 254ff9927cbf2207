"""What a training run is told: `TrainConfig` (every setting, stored with the run), the stage names, which
settings a resume may change, and the one error type a run that cannot start or go on raises.

The defaults are the shipped model's recipe, first phase (configs/recolor-small-pretrain.json; a test holds
them equal): EfficientNet-Lite2 from ImageNet, colour classes, the class loss plus 5 × the pixel loss on the
decoded colour, 160 px crops. configs/ holds the recipe's files; `recolor train --config` reads them."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..defaults import PHOTO_RENDER_FACTOR
from ..model import ModelConfig
from .data import DEFAULT_ZOOM

STAGES = ("pretrain", "critic", "gan")
# settings older runs (and the shipped model's recipe) stored that no longer do anything; a resume skips them.
# hints, hint_free: the generator's hint input, trained with hints drawn from each photo (gone: hints are held by
# propagation alone, for every model)
RETIRED = {"val_size", "hints", "hint_free"}
RETIRED_MODEL = {"hints": None, "chroma_gain": 1.0}  # ... and model settings: always (None), or at that value
RUNTIME = ("out", "device", "workers", "threads")  # where a run executes: a resume takes these from the caller
# what a resume may change: it leaves the data, the networks, the losses and the finished steps as they were
RESUMABLE = {"lr", "critic_lr", "gan_lr", "pretrain_steps", "critic_steps", "gan_steps", "amp", "log_every",
             "val_every", "save_every"}
SAMPLE_OFFSET = {"pretrain": 0, "critic": 1 << 40, "gan": 2 << 40}  # each stage draws its own crops
# the run's settings that are also its generator's: a `"model": {...}` block and the top level must agree
MODEL_FLAGS = ("colour_classes",)
RECIPE_MODEL = ModelConfig(encoder="efficientnet_lite2", colour_classes=True)  # the shipped kind, undecoded


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a run; stored in config.json and in last.ckpt (a resume uses the stored one)."""
    data: str
    out: str
    val: str | None = None  # folder of val photos; None: a fixed hold-out of `data`
    model: str | ModelConfig = RECIPE_MODEL  # registered name, a .safetensors to fine-tune, or a config
    stage: str = "pretrain"  # pretrain | critic | gan | all (the shipped model had no adversarial phase)
    seed: int = 0
    device: str = "auto"
    workers: int = -1  # data-loader processes; -1: half the CPU cores, at most 8
    threads: int = 0  # CPU threads for torch; 0: all cores (split between processes under torchrun)
    amp: bool = True  # bf16 autocast on CPU (1.7× faster), bf16/fp16 on CUDA
    pretrained: bool = True  # ImageNet weights for the encoder and the perceptual network
    perceptual: str = "none"  # mobilenet_v2 | vgg16_bn | none
    batch_size: int = 16  # per process; the global batch is batch_size × world size
    noise: float = 2.0  # max σ of Gaussian noise on the input L (L units); steadies video
    fade: float = 0.0  # share of crops whose input L is softened and faded like an old print (data.faded)
    zoom: float = DEFAULT_ZOOM  # crops come from the photo scaled to a shorter side in [size, zoom·size]
    source_weights: dict[str, float] = field(default_factory=dict)  # draw weight per file-name prefix; others 1
    ema: float = 0.999  # weight averaging; 0 turns it off
    # classify a/b (ab_classes.py). None: as the model is (the recipe's does); set, it sets a registered
    # architecture's, converts a regression model to fine-tune (True), fills a model block's gap, or must
    # agree with a block that states it (MODEL_FLAGS)
    colour_classes: bool | None = None
    class_weight: float = 1.0  # the rebalanced cross-entropy of a colour_classes model
    rebalance: float = 0.5  # class rebalancing's mix with the uniform (Zhang et al.'s λ; 1: no rebalancing)
    # stage 1: generator pretraining
    pretrain_steps: int = 3000
    sizes: tuple[int, ...] = (160,)  # crop sizes, progressive ...
    size_fractions: tuple[float, ...] = (1.0,)  # ... and the share of pretrain steps at each
    freeze_fraction: float = 0.1  # share of pretrain steps with the pretrained encoder frozen
    lr: float = 5e-4
    encoder_lr_mult: float = 0.3  # pretrained features move slower than the fresh decoder
    weight_decay: float = 1e-2
    warmup: int = 100
    pixel_weight: float = 5.0  # on the decoded colour of a colour_classes model
    feature_weight: float = 0.0  # perceptual loss; 0.1 with pixel_weight 1 makes its gradient ~4× the pixel's
    colour_weight: float = 0.0  # match each prediction's colourfulness to its ground truth's (losses.py)
    # stages 2 and 3: critic and adversarial training
    gan_size: int = 192
    critic_width: int = 64
    critic_steps: int = 300
    critic_lr: float = 4e-4
    gan_steps: int = 600
    gan_lr: float = 1e-4
    adv_weight: float = 0.01
    # validation, checkpoints, logs
    val_fraction: float = 0.05
    val_max: int = 64  # val photos scored at each validation
    val_render_factor: int = PHOTO_RENDER_FACTOR  # whole photos through the engine, as `recolor eval`
    val_every: int = 300
    samples: int = 6  # val photos in each sample sheet
    save_every: int = 50
    log_every: int = 25

    def __post_init__(self):
        if isinstance(self.model, ModelConfig):  # the run's flags are its model's
            given = {k: getattr(self, k) for k in MODEL_FLAGS if getattr(self, k) is not None}
            for key, value in agree_with_model(self.model.to_dict(), given).items():
                object.__setattr__(self, key, value)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = {k: v for k, v in d.items() if k not in RETIRED}
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(sorted(unknown))}")
        wrong = mistyped(d)
        if wrong:
            raise ValueError(f"training settings of the wrong type: {', '.join(wrong)}")
        for key in ("sizes", "size_fractions"):
            if key in d:
                d[key] = tuple(d[key])
        if isinstance(d.get("model"), dict):
            block = {k: v for k, v in d["model"].items()
                     if k not in RETIRED_MODEL or RETIRED_MODEL[k] not in (None, v)}
            given = {k: d[k] for k in MODEL_FLAGS if d.get(k) is not None}
            block = {**given, **block}  # a gap in the block: the run's setting
            agree_with_model(block, given)
            d["model"] = ModelConfig.from_dict(block)
        return cls(**d)

    def check(self) -> "TrainConfig":
        if not (self.data and str(self.data).strip()):  # "" would silently train on the current folder
            raise ValueError("no training data: set data (--data) to a folder of colour photos")
        if self.stage not in (*STAGES, "all"):
            raise ValueError(f"unknown stage {self.stage!r}; choose one of: {', '.join(STAGES)}, all")
        if len(self.sizes) != len(self.size_fractions) or abs(sum(self.size_fractions) - 1) > 1e-6:
            raise ValueError("sizes and size_fractions need the same length, and the fractions must sum to 1")
        if any(s % 32 for s in (*self.sizes, self.gan_size)):
            raise ValueError("crop sizes must be multiples of 32 (the encoder's stride)")
        if any(w < 0 for w in self.source_weights.values()):
            raise ValueError("source weights must be 0 or more")
        if not 0 <= self.fade <= 1:
            raise ValueError("fade is a share of crops: between 0 and 1")
        return self


def agree_with_model(block: dict, given: dict) -> dict:
    """The model block's MODEL_FLAGS, checked against those the run states (`given`): a conflict is an error,
    never settled silently (a block's colour_classes was once overwritten by the run's default)."""
    for key, value in given.items():
        if key in block and block[key] != value:
            raise ValueError(f"model.{key} is {json.dumps(block[key])} but {key} is {json.dumps(value)}: "
                             f"they describe one generator, so set it in one place")
    return {k: block[k] for k in MODEL_FLAGS if k in block}


class TrainingError(RuntimeError):
    """A run that cannot start or cannot go on (bad folder, diverged loss); the message says what to do."""


def mistyped(d: dict) -> list[str]:
    """Settings whose JSON type cannot stand for their field's (a string for a number, a number for a flag)."""
    kinds = {bool: bool, int: int, float: (int, float), str: str, tuple: (list, tuple), dict: dict}
    wrong = []
    for f in dataclasses.fields(TrainConfig):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        default = "" if default is dataclasses.MISSING else default  # data and out: strings
        if default is None:  # optional: None, or a value of the annotation's first type
            if d.get(f.name) is None:
                continue
            default = {"bool": False, "str": ""}.get(str(f.type).split(" | ")[0])
        if f.name not in d or f.name == "model" or type(default) not in kinds:  # model: a name or a config
            continue
        value = d[f.name]
        if not isinstance(value, kinds[type(default)]) or isinstance(value, bool) != isinstance(default, bool):
            wrong.append(f"{f.name}={value!r}")
    return wrong


def read_config_file(path: str | Path) -> dict:
    """Settings from a JSON file (`--config`, e.g. a run's config.json), checked: any problem is one line."""
    try:
        settings = json.loads(Path(path).read_text())
    except OSError as e:
        raise TrainingError(f"--config {path}: cannot read it ({e.strerror or e})") from None
    except ValueError as e:  # not JSON, or not UTF-8
        raise TrainingError(f"--config {path}: not valid JSON ({e})") from None
    if not isinstance(settings, dict):
        raise TrainingError(f"--config {path}: expected a JSON object of training settings, "
                            f"not a {type(settings).__name__}")
    try:
        TrainConfig.from_dict({"data": "", "out": "", **settings})
    except (ValueError, TypeError) as e:
        raise TrainingError(f"--config {path}: {e}") from None
    return settings
