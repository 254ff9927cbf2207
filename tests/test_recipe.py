"""The shipped model's recipe (configs/): TrainConfig's defaults are its first phase, its model block is never
overwritten by the run's settings, and both phases train a tiny model of the shipped kind through `recolor
train --config` (tiny photos, a few steps, small crops: seconds)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from train_helpers import TINY_MODEL, make_photos

from recolor.cli import app
from recolor.training import TrainConfig
from recolor.training.config import read_config_file
from recolor.training.state import build_generator

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN, FINE_TUNE = ROOT / "configs" / "recolor-small-pretrain.json", ROOT / "configs" / "recolor-small-ft320.json"
# which photos, on which machine, with which luck: the rest of the recipe is how, and that is the default
WHERE = ("data", "val", "seed", "threads", "workers", "source_weights")


def test_trainconfig_defaults_are_the_recipe():
    recipe = read_config_file(PRETRAIN)
    assert TrainConfig.from_dict({**recipe, "out": "o"}) == TrainConfig(out="o", **{k: recipe[k] for k in WHERE})
    assert set(read_config_file(FINE_TUNE)) - set(recipe) <= {"ema"}  # the second phase states the same settings


def test_a_model_block_is_never_overwritten_silently(tmp_path):
    block = {**TINY_MODEL, "colour_classes": True}
    for settings in ({"model": block}, {"model": block, "colour_classes": True}):  # stated once, or twice alike
        config = TrainConfig.from_dict({"data": "d", "out": "o", "pretrained": False, **settings})
        assert build_generator(config).config.colour_classes  # a regression model before: the run's default won
    gap = TrainConfig.from_dict({"data": "d", "out": "o", "pretrained": False, "model": TINY_MODEL,
                                 "colour_classes": False})
    assert not build_generator(gap).config.colour_classes  # what the block leaves out comes from the run
    with pytest.raises(ValueError, match="model.colour_classes is true but colour_classes is false"):
        TrainConfig.from_dict({"data": "d", "out": "o", "model": block, "colour_classes": False})
    with pytest.raises(ValueError, match="set it in one place"):
        TrainConfig(data="d", out="o", model=dataclasses.replace(TrainConfig.model, colour_classes=False),
                    colour_classes=True)
    (tmp_path / "cfg.json").write_text(json.dumps({"model": block}))
    result = CliRunner().invoke(app, ["train", "--config", str(tmp_path / "cfg.json"), "--data", str(tmp_path),
                                      "--out", str(tmp_path / "run"), "--no-classes"])
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and output.startswith("error: ") and "set it in one place" in output, output
    assert not (tmp_path / "run").exists()


def tiny(recipe: Path, folder: Path, **overrides) -> Path:
    """The recipe file with the sizes and steps of a test, written beside the photos."""
    settings = {**json.loads(recipe.read_text()), "data": str(folder / "train"), "val": str(folder / "val"),
                "pretrained": False, "source_weights": {}, "batch_size": 2, "pretrain_steps": 2, "sizes": [32],
                "warmup": 1, "val_max": 2, "val_every": 2, "val_render_factor": 8, "samples": 1, "save_every": 1,
                "log_every": 1, "threads": 1, "workers": 0, **overrides}
    path = folder / recipe.name
    path.write_text(json.dumps(settings))
    return path


@pytest.mark.slow
def test_both_phases_of_the_recipe_train_a_model_of_the_shipped_kind(tmp_path):
    import torch
    from recolor.weights import read_weights
    make_photos(tmp_path / "train", 4, seed=1)
    make_photos(tmp_path / "val", 2, seed=2, prefix="val")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: more threads only contend
    try:
        first, second = tmp_path / "pretrain", tmp_path / "ft320"
        for recipe, out, overrides in ((PRETRAIN, first, {}),
                                       (FINE_TUNE, second, {"model": str(first / "model.safetensors"), "sizes": [64]})):
            result = CliRunner().invoke(app, ["train", "--config", str(tiny(recipe, tmp_path, **overrides)),
                                              "--out", str(out)])
            assert result.exit_code == 0, result.output
    finally:
        torch.set_num_threads(threads)
    shipped, shipped_state, _ = read_weights(ROOT / "weights" / "recolor-small.safetensors")
    made, made_state, _ = read_weights(second / "model.safetensors")
    # the decoding (confidence curve, the attention's grid) is set after training
    decoding = {"confidence_gain": shipped.confidence_gain, "attention_grid": shipped.attention_grid}
    assert dataclasses.replace(made, **decoding) == shipped
    assert {k: v.shape for k, v in made_state.items()} == {k: v.shape for k, v in shipped_state.items()}
    assert json.loads((second / "config.json").read_text())["sizes"] == [64]
