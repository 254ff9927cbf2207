"""The state of a run: its networks (generator, its weight average, critic), their optimizers and where the
run stands, built fresh from a `TrainConfig`; `checkpoint.py` saves and restores it.

The generator is a registered architecture (with an ImageNet encoder when `pretrained`) or a weights file to
fine-tune. Pretraining uses AdamW with the encoder in its own parameter group at a lower learning rate
(discriminative fine-tuning, Howard & Ruder 2018); the adversarial stages use SAGAN's Adam(β = (0, 0.9)) pair
(Zhang et al. 2019)."""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..encoders import PretrainedWeightsError
from ..model import MODELS, Generator, ModelConfig, apply_spectral_norm, create_model
from ..weights import WeightsError, read_weights
from .config import TrainConfig, TrainingError
from .critic import Critic, CriticConfig


@dataclass
class RunState:
    """What a checkpoint holds; everything else is rebuilt from the config."""
    generator: Generator
    ema: Generator | None
    critic: Critic
    g_opt: torch.optim.Optimizer | None = None
    c_opt: torch.optim.Optimizer | None = None
    scaler: torch.amp.GradScaler | None = None
    stage: str = "pretrain"
    step: int = 0  # steps done in `stage`
    done: tuple[str, ...] = ()  # finished stages
    best: float = math.inf  # best validation score so far
    best_at: str = ""

    def saved_generator(self) -> Generator:
        return self.ema if self.ema is not None else self.generator


def build_generator(cfg: TrainConfig) -> Generator:
    """A registered name or config (ImageNet encoder if cfg.pretrained), or a weights file to fine-tune."""
    if isinstance(cfg.model, ModelConfig) or cfg.model in MODELS:
        # a config is taken as it is (TrainConfig holds its colour_classes equal to the run's); a registered
        # architecture takes the run's, if set
        config = cfg.model if isinstance(cfg.model, ModelConfig) else MODELS[cfg.model]
        if cfg.colour_classes is not None:
            config = dataclasses.replace(config, colour_classes=cfg.colour_classes)
        try:
            model = create_model(config, pretrained_encoder=cfg.pretrained)
        except PretrainedWeightsError as e:
            raise TrainingError(str(e)) from None
    elif str(cfg.model).endswith(".safetensors"):
        model = fine_tune_start(Path(cfg.model), colour_classes=bool(cfg.colour_classes))
    else:
        raise TrainingError(f"unknown model {cfg.model!r}: use {', '.join(MODELS)} or a .safetensors file to fine-tune")
    return apply_spectral_norm(model) if model.config.spectral_norm else model


def fine_tune_start(path: Path, colour_classes: bool = False) -> Generator:
    """The generator in a weights file, to fine-tune; a missing, foreign or mismatched file is a TrainingError.
    colour_classes: make a regression model a classifier; it keeps the encoder and the decoder to stride 4, its
    new class head starts fresh."""
    if not path.is_file():
        raise TrainingError(f"--model {path}: no such file")
    try:
        config, state, _ = read_weights(path)
        converting = colour_classes and not config.colour_classes
        model = create_model(dataclasses.replace(config, colour_classes=config.colour_classes or colour_classes))
    except (WeightsError, ValueError) as e:  # not a recolor weights file, or a config no model fits
        raise TrainingError(f"--model {path}: {str(e).removeprefix(f'{path}: ')}") from None
    if converting:  # the regression head's tensors go; the new modules keep their initial values
        own = model.state_dict()
        state = {**{k: v for k, v in own.items() if k.startswith("classes.")},
                 **{k: v for k, v in state.items() if k in own}}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:  # tensors of other shapes or names than its own config's
        raise TrainingError(f"--model {path}: its weights do not fit the model its metadata describes "
                            f"({' '.join(str(e).split())[:300]})") from None
    return model


def new_state(cfg: TrainConfig, device: torch.device) -> RunState:
    generator = build_generator(cfg).to(device).train()
    ema = copy.deepcopy(generator).eval().requires_grad_(False) if cfg.ema > 0 else None
    critic = Critic(CriticConfig(nf=cfg.critic_width)).to(device).train()
    return RunState(generator, ema, critic)


CLASS_HEAD_LR_MULT = 5.0  # a class head's (--classes) rate as a multiple of the decoder's: it may start fresh; not tuned


def make_optimizers(state: RunState, cfg: TrainConfig, stage: str) -> None:
    """AdamW with encoder/decoder groups for pretraining; SAGAN's Adam(0, 0.9) pair for the GAN stages."""
    g = state.generator
    if stage == "pretrain":
        enc = list(g.encoder.parameters())
        head = list(g.classes.parameters()) if g.config.colour_classes else []
        ids = {id(p) for p in enc + head}
        rest = [p for p in g.parameters() if id(p) not in ids]
        mult = cfg.encoder_lr_mult if cfg.pretrained else 1.0
        groups = [{"params": rest, "lr_mult": 1.0}, {"params": enc, "lr_mult": mult}]
        if head:  # a class head, fresh on a trained decoder, has further to go (no group when absent)
            groups.append({"params": head, "lr_mult": CLASS_HEAD_LR_MULT})
        state.g_opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        state.g_opt = torch.optim.Adam(g.parameters(), lr=cfg.gan_lr, betas=(0.0, 0.9))
    state.c_opt = torch.optim.Adam(state.critic.parameters(), lr=cfg.critic_lr, betas=(0.0, 0.9))
