"""Reading photos as a viewer shows them, planning outputs, and a batch that survives any one bad file."""
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from recolor.cli.report import problem_kind
from recolor.files import Job, Plan, collisions, colorize_files, plan_jobs, skip_done
from recolor.images import read_image


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(tmp_path, orientation):
    pixels = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.png"  # PNG: lossless, so both decoders must agree exactly
    Image.fromarray(pixels).save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    assert np.array_equal(read_image(path), expected)


def test_same_names_under_one_out_folder_are_collisions(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "x.jpg"), np.zeros((8, 8), np.uint8))
    plan = plan_jobs([tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg"], tmp_path / "out")
    [(target, first, second)] = collisions(plan)
    assert target == tmp_path / "out" / "x.jpg" and {first.parent.name, second.parent.name} == {"a", "b"}
    # beside their inputs, or mirrored from distinct folders, every input has its own output
    assert collisions(plan_jobs([tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg"])) == []
    assert collisions(plan_jobs([tmp_path / "a", tmp_path / "b"], tmp_path / "out")) == []


def test_skip_done_keeps_jobs_with_a_missing_output(tmp_path):
    jobs = [Job(tmp_path / f"{n}.jpg", tmp_path / f"{n}_color.jpg", tmp_path / f"{n}_compare.jpg") for n in "abc"]
    (tmp_path / "a_color.jpg").touch()
    (tmp_path / "a_compare.jpg").touch()
    (tmp_path / "b_color.jpg").touch()  # its sheet is missing: not done
    plan = Plan(jobs=list(jobs))
    assert skip_done(plan) == 1
    assert [j.source.stem for j in plan.jobs] == ["b", "c"]


class Fussy:
    """A colorizer that fails on some images the way real ones do after decoding (the engine's checks, out of
    memory at one size); the others come back gray-to-colour as usual."""

    def __init__(self):
        self.calls = []

    def colorize_batch(self, images, render_factor, batch_size, hints=None, reference=None):
        self.calls.append(len(images))
        for im in images:
            if im.shape[0] == 13:
                raise ValueError("render size out of range")
            if im.shape[0] == 17:
                raise MemoryError()
        return [np.dstack([im] * 3) if im.ndim == 2 else im for im in images]


def test_a_failure_after_decoding_fails_that_file_alone(tmp_path):
    jobs = []
    for name, height in (("ok1", 8), ("bad", 13), ("ok2", 9), ("oom", 17), ("ok3", 10)):
        cv2.imwrite(str(tmp_path / f"{name}.png"), np.full((height, 8), 100, np.uint8))
        jobs.append(Job(tmp_path / f"{name}.png", tmp_path / "out" / f"{name}.png"))
    outcomes = colorize_files(Fussy(), jobs, 12, batch_size=4)
    errors = {o.job.source.stem: o.error for o in outcomes}
    assert errors["ok1"] is None and errors["ok2"] is None and errors["ok3"] is None
    assert "render size out of range" in errors["bad"] and "MemoryError" in errors["oom"]
    assert sorted(p.stem for p in (tmp_path / "out").iterdir()) == ["ok1", "ok2", "ok3"]


def test_problem_kinds_group_messages_without_names_or_numbers():
    assert problem_kind("a/x.jpg", "a/x.jpg: 9000×9000 is 81 MP, over the limit") == "N×N is N MP, over the limit"
    assert problem_kind("a/x.jpg", "out/x.jpg: exists (use --overwrite to replace it)") == \
        "exists (use --overwrite to replace it)"


def test_importing_and_using_recolor_leaves_the_process_alone(tmp_path, gray_photo, model_file):
    """A library must not change its caller's process: environment, umask, torch threads, Pillow's limits."""
    cv2.imwrite(str(tmp_path / "in.png"), gray_photo[:64, :64])
    code = f"""
import os, torch, cv2  # cv2's own loader edits LD_LIBRARY_PATH on import: not ours to judge
from PIL import Image
os.umask(0o027); torch.set_num_threads(1)
env, limit = dict(os.environ), Image.MAX_IMAGE_PIXELS
from recolor import Colorizer
from recolor.files import Job, colorize_files
c = Colorizer.from_pretrained({str(model_file)!r}, device="cpu")
[o] = colorize_files(c, [Job(__import__("pathlib").Path({str(tmp_path / 'in.png')!r}),
                             __import__("pathlib").Path({str(tmp_path / 'out.png')!r}))], 8)
assert o.error is None, o.error
assert dict(os.environ) == env, set(os.environ.items()) ^ set(env.items())
assert os.umask(0o027) == 0o027 and torch.get_num_threads() == 1 and Image.MAX_IMAGE_PIXELS == limit
assert os.stat({str(tmp_path / 'out.png')!r}).st_mode & 0o777 == 0o640  # published under the caller's umask
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
