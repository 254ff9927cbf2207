"""`recolor train` under torchrun: 2 gloo processes on the CPU train one model; only rank 0 writes files; a rank
that fails ends the whole run instead of leaving the others waiting for it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from train_helpers import make_photos, photo, tiny_settings

pytestmark = pytest.mark.slow


def torchrun(tmp_path: Path, timeout: float, **env_vars: str) -> tuple[int, str]:
    """`recolor train` in 2 gloo processes on tiny photos, run folder tmp_path/run -> (exit code, output). A run
    that outlives `timeout` fails the test instead of blocking it."""
    make_photos(tmp_path / "train", 8, seed=1)
    make_photos(tmp_path / "val", 2, seed=2, prefix="val")
    settings = tiny_settings(tmp_path / "train", tmp_path / "val", pretrain_steps=6, critic_steps=2, gan_steps=2,
                             sizes=[32], size_fractions=[1.0], batch_size=2)
    (tmp_path / "cfg.json").write_text(json.dumps(settings))
    (tmp_path / "audit").mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RECOLOR_AUDIT_RUN": str(tmp_path / "run"),
           "RECOLOR_AUDIT_DIR": str(tmp_path / "audit"), **env_vars}
    log = tmp_path / "torchrun.log"  # a file, not a pipe: reading a pipe would wait for every worker to exit
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                                 "2", str(Path(__file__).with_name("ddp_entry.py")), "train", "--config",
                                 str(tmp_path / "cfg.json"), "--out", str(tmp_path / "run"), "--workers", "0",
                                 "--device", "cpu"], env=env, cwd=tmp_path, stdout=f, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()  # on SIGTERM torchrun stops its workers (each runs in a session of its own)
            proc.wait(timeout=60)
            pytest.fail(f"the run was still going after {timeout:.0f} s (hung?): {log.read_text()[-3000:]}")
        finally:
            if proc.poll() is None:
                proc.kill()
    return proc.returncode, log.read_text()


def test_two_process_gloo_run_loads_and_only_rank0_writes(tmp_path):
    code, output = torchrun(tmp_path, timeout=300)
    assert code == 0, output[-3000:]
    run, audit = tmp_path / "run", tmp_path / "audit"

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


def test_a_rank_that_fails_ends_the_run_instead_of_hanging_it(tmp_path):
    # rank 1 raises before step 5 while rank 0 waits for it in that step's all-reduce. Before the fix, rank 1
    # then waited in a barrier in train()'s `finally` and both sat until gloo's 30-minute timeout.
    code, output = torchrun(tmp_path, timeout=150, RECOLOR_FAIL_RANK1_AT="5")
    assert code != 0
    assert "injected failure on rank 1 at step 5" in " ".join(output.split()), output[-3000:]
    ckpt = torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)  # the last good checkpoint is intact
    assert (ckpt["stage"], ckpt["step"]) == ("pretrain", 3)
