"""One training step of each stage: its losses, its backward pass and its optimizer step.

- `pretrain`: the generator alone, on pixel (smooth L1 on a/b) + perceptual (Johnson et al. 2016) +
  colourfulness-matching losses (`reconstruction`).
- `critic`: the critic alone, hinge loss on real vs the fixed generator's colour (Antic's NoGAN: pretrain
  both networks separately so the adversarial phase starts balanced).
- `gan`: one two time-scale update (Heusel et al. 2017): the critic on this batch's fakes, then the generator
  on reconstruction + λ·adversarial against the updated critic.

`STAGE_STEP` names the step each stage takes. Each step returns its losses as detached
tensors (no GPU sync) and raises TrainingError, on every rank at once, when a loss stops being finite.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..ab_classes import class_loss
from .config import STAGES, TrainConfig, TrainingError
from .distributed import Dist, all_finite
from .losses import (FeatureLoss, colourfulness_loss, critic_hinge_loss, generator_hinge_loss, lab_to_rgb,
                     pixel_loss)
from .state import RunState


@dataclass
class Step:
    """The per-run objects a training step needs."""
    cfg: TrainConfig
    ctx: Dist
    state: RunState
    g_net: nn.Module  # the generator, DDP-wrapped under torchrun
    c_net: nn.Module  # the critic, DDP-wrapped under torchrun
    features: FeatureLoss | None
    amp_dtype: torch.dtype | None
    frozen_encoder: bool = False  # g_net was wrapped with the encoder frozen (DDP fixes the trained parameters)
    class_weights: torch.Tensor | None = None  # per-bin rebalancing of a colour_classes generator

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.ctx.device.type, dtype=self.amp_dtype)

    def backward(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad(set_to_none=True)
        scaler = self.state.scaler
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    def reconstruction(self, l: torch.Tensor, ab: torch.Tensor, fake: torch.Tensor, logs: dict) -> torch.Tensor:
        """pixel_weight · smooth-L1(ab) + feature_weight · perceptual(RGB) + colour_weight · colourfulness."""
        cfg = self.cfg
        loss = cfg.pixel_weight * pixel_loss(fake, ab)
        logs["pixel"] = loss.detach()
        use_features = self.features is not None and cfg.feature_weight > 0
        if not use_features and cfg.colour_weight <= 0:
            return loss
        fake_rgb, true_rgb = lab_to_rgb(l, fake), lab_to_rgb(l, ab)
        if use_features:
            with self.autocast():
                feat = self.features(fake_rgb, true_rgb)
            logs["feature"] = feat.detach()
            loss = loss + cfg.feature_weight * feat
        if cfg.colour_weight > 0:
            colour = colourfulness_loss(fake_rgb, true_rgb)
            logs["colour"] = colour.detach()
            loss = loss + cfg.colour_weight * colour
        return loss

    def generate(self, l_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> (a/b in fp32, the bin logits of a colour_classes generator or None)."""
        classes = self.state.generator.config.colour_classes
        with self.autocast():
            out = self.g_net(l_in, with_logits=classes)
        fake, logits = out if classes else (out, None)
        return fake.float(), logits

    def class_term(self, logits: torch.Tensor | None, ab: torch.Tensor, logs: dict) -> torch.Tensor | float:
        """class_weight · the rebalanced cross-entropy on the bins (ab_classes.py), in every generator step:
        without it an adversarial phase would move a classes model's logits by the decoded a/b alone."""
        if logits is None:
            return 0.0
        ce = class_loss(logits, ab, self.state.generator.classes.centres, self.class_weights)
        logs["class"] = ce.detach()
        return self.cfg.class_weight * ce

    def pretrain(self, l_in, l, ab) -> dict:
        logs: dict = {}
        fake, logits = self.generate(l_in)
        loss = self.reconstruction(l, ab, fake, logs) + self.class_term(logits, ab, logs)
        self.check(loss, "generator")
        self.backward(loss, self.state.g_opt)
        logs["loss"] = loss.detach()
        return logs

    def critic(self, l_in, l, ab) -> dict:
        """Critic pretraining: real vs the (fixed) generator's output."""
        with torch.no_grad(), self.autocast():
            fake = self.state.generator.eval()(l_in).float()
        loss = self.critic_update(l, ab, fake)
        return {"loss": loss, "critic": loss}

    def critic_update(self, l, ab, fake) -> torch.Tensor:
        with self.autocast():  # real and fake in one batch: one DDP forward per backward
            logits = self.c_net(torch.cat([l, l]), torch.cat([ab, fake.detach()]))
        real, fake_logits = logits.float().chunk(2)
        loss = critic_hinge_loss(real, fake_logits)
        self.check(loss, "critic")
        self.backward(loss, self.state.c_opt)
        return loss.detach()

    def gan(self, l_in, l, ab) -> dict:
        """One TTUR step: the critic on this batch's fakes, then the generator against the updated critic."""
        logs: dict = {}
        fake, logits = self.generate(l_in)
        logs["critic"] = self.critic_update(l, ab, fake)
        critic = self.state.critic.requires_grad_(False)  # the plain module: its grads are not wanted here
        with self.autocast():
            adv = generator_hinge_loss(critic(l, fake))
        critic.requires_grad_(True)
        loss = self.reconstruction(l, ab, fake, logs) + self.class_term(logits, ab, logs) + self.cfg.adv_weight * adv
        logs["adv"] = adv.detach()
        self.check(loss, "generator")
        self.backward(loss, self.state.g_opt)
        logs["loss"] = loss.detach()
        return logs

    def check(self, loss: torch.Tensor, what: str) -> None:
        if not all_finite(loss.detach(), self.ctx):
            raise TrainingError(
                f"{what} loss became {loss.item()} at {self.state.stage} step {self.state.step + 1}; stopped. "
                f"The last good checkpoint is intact: resume with --resume after lowering the learning rate, "
                f"or turn AMP off (--no-amp)")


# stage -> its step: (Step, L_in, L, ab) -> losses
StageStep = Callable[[Step, torch.Tensor, torch.Tensor, torch.Tensor], dict]
STAGE_STEP: dict[str, StageStep] = {"pretrain": Step.pretrain, "critic": Step.critic, "gan": Step.gan}
assert tuple(STAGE_STEP) == STAGES
