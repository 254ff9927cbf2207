"""`torchrun -m recolor image`: each process its own share of the photos, one summary, resumable."""
import os
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest

from recolor.shards import Shard


def test_shards_are_disjoint_and_complete():
    jobs = list(range(23))
    shares = [Shard(rank, 4).take(jobs) for rank in range(4)]
    assert sorted(j for share in shares for j in share) == jobs
    assert Shard().take(jobs) == jobs


def torchrun(*args, cwd, timeout=300):
    """`recolor image` in 2 gloo processes on the CPU; killed (and the test failed) if it hangs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "-m", "recolor", "image", *map(str, args)], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"still running after {timeout} s: {proc.communicate()[1][-2000:]}")
    return proc.returncode, out + err


@pytest.mark.slow
def test_two_processes_share_an_archive_and_resume(tmp_path, model_file, gray_photo):
    archive = tmp_path / "archive"
    archive.mkdir()
    for i in range(5):
        cv2.imwrite(str(archive / f"scan{i}.png"), np.roll(gray_photo[:96, :128], 7 * i, axis=1))
    (archive / "broken.png").write_text("not an image")
    out = tmp_path / "out"
    common = [archive, "-o", out, "-r", "7", "--model", model_file, "--device", "cpu"]
    code, text = torchrun(*common, cwd=tmp_path)
    assert code != 0  # the broken file
    # one summary for both processes; a file done twice would fail with "exists" (no --overwrite)
    assert text.count("1 failed, 5 done") == 1, text
    assert "broken.png" in text and "exists" not in text
    assert sorted(p.name for p in out.iterdir()) == [f"scan{i}.png" for i in range(5)]
    (out / "scan3.png").unlink()  # as if the run had been stopped before this one
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code, text = torchrun(*common, "--skip-existing", cwd=tmp_path)
    assert "skipped 4 inputs whose outputs exist" in text and "1 failed, 1 done" in text, text
    assert all(stamps[name] == (out / name).stat().st_mtime_ns for name in stamps)
    assert (out / "scan3.png").exists()
