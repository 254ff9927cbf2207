"""Training a colorizer on a folder of colour photos: DeOldify's "NoGAN" recipe, made automatic and resumable.

Stages (each can run alone in the same run folder; `all` runs them in order):
1. `pretrain` — the generator alone: smooth L1 on a/b, a perceptual loss on RGB (Johnson et al. 2016) from a
   frozen ImageNet network, and a colourfulness-matching term that counters the pixel loss's pull to gray.
   Progressive crop sizes (128 → 192 → 256 px by default, as in Karras et al.'s progressive growing and
   fastai's progressive resizing), crops zoomed so objects also appear as big as the engine renders them, and
   the pretrained encoder frozen for the first part, then trained at a lower learning rate (discriminative
   fine-tuning, Howard & Ruder 2018). AdamW, warmup + cosine decay. An exponential moving average of the
   weights (Polyak averaging) is what gets saved.
2. `critic` — the critic alone, on real vs generated colour (Antic's NoGAN: pretrain both networks separately
   so the adversarial phase starts balanced). Conditional PatchGAN (Isola et al. 2017) with spectral norm
   and self-attention (Miyato et al. 2018; Zhang et al. 2019), hinge loss.
3. `gan` — a short adversarial phase: generator loss = pixel + perceptual + λ·adversarial (+ the class loss for a
   `colour_classes` generator, as in pretraining); two time-scale
   update rule (Heusel et al. 2017, as SAGAN uses it: critic lr 4× the generator's, Adam β = (0, 0.9)).
   Validation every N steps keeps `best.safetensors` by a validation score, so nobody has to pick DeOldify's
   "inflection point" by eye.

Run folder `runs/NAME/`: config.json, data.json (the files used), metrics.jsonl, samples/ (fixed val sheets),
last.ckpt (everything needed to resume exactly, written atomically), model.safetensors (the latest weights)
and best.safetensors (best validation score). The data order and augmentation are a pure function of
(seed, step) (`data.StepBatches`), so a run killed at any moment and resumed with `resume=True` ends with the
same weights as an uninterrupted one. Under `torchrun` the same code trains data-parallel (DDP); only rank 0
writes files or prints.

How a run flows through the modules: `loop.train` takes a `config.TrainConfig` (on resume, the run's stored
one: `bootstrap.resume_config`), joins the process group (`distributed`), and `bootstrap` builds what the run
starts from: the photo list (`data.scan_photos`), the `state.RunState` (fresh, or `checkpoint.restore`d), the
perceptual loss (`losses.FeatureLoss`). Then, for each stage, `loop.Run.run_stage` draws batches
(`data.StepBatches` → `data.ColorPhotos`), and each training step is:
  `schedule` (crop size, learning rate, frozen encoder) → `steps.STAGE_STEP[stage]` (the stage's losses from
  `losses` and `critic`, backward, optimizer step) → `schedule.update_ema` → `reporting.LogWindow`
and, at their intervals, a log line (through a `reporting.Reporter`), `validation.validate` (which keeps
best.safetensors) and `checkpoint.save_checkpoint` (last.ckpt) with model.safetensors.
"""
from .bootstrap import resume_config
from .config import STAGES, TrainConfig, TrainingError, read_config_file
from .loop import train
from .reporting import NullReporter, Reporter
from .state import fine_tune_start

__all__ = ["STAGES", "NullReporter", "Reporter", "TrainConfig", "TrainingError", "fine_tune_start",
           "read_config_file", "resume_config", "train"]
