"""`recolor train` under torchrun: 2 gloo processes on the CPU train one model; only rank 0 writes files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from train_helpers import make_photos, photo, tiny_settings

pytestmark = pytest.mark.slow


def test_two_process_gloo_run_loads_and_only_rank0_writes(tmp_path):
    make_photos(tmp_path / "train", 8, seed=1)
    make_photos(tmp_path / "val", 2, seed=2, prefix="val")
    settings = tiny_settings(tmp_path / "train", tmp_path / "val", pretrain_steps=6, critic_steps=2, gan_steps=2,
                             sizes=[32], size_fractions=[1.0], batch_size=2)
    (tmp_path / "cfg.json").write_text(json.dumps(settings))
    run, audit = tmp_path / "run", tmp_path / "audit"
    audit.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RECOLOR_AUDIT_RUN": str(run), "RECOLOR_AUDIT_DIR": str(audit)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(Path(__file__).with_name("ddp_entry.py")), "train", "--config", str(tmp_path / "cfg.json"),
                           "--out", str(run), "--workers", "0", "--device", "cpu"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    rank0 = json.loads((audit / "rank0.json").read_text())
    rank1 = json.loads((audit / "rank1.json").read_text())
    assert any(p.endswith("last.ckpt") for _, p in rank0), "the audit hook saw no writes at all"
    assert rank1 == [], f"rank 1 wrote into the run: {rank1}"

    logs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = Counter((r["stage"], r["step"], "val" in r) for r in logs)
    assert steps and max(steps.values()) == 1  # one writer: no line twice
    assert [r["step"] for r in logs if r["stage"] == "pretrain" and "val" not in r] == [3, 6]

    from recolor.engine import Colorizer
    out = Colorizer.from_pretrained(str(run / "model.safetensors"), "cpu").colorize(photo(np.random.default_rng(0)), 7)
    assert out.shape == (72, 88, 3)
