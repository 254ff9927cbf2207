import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from recolor.cli import app


@pytest.fixture
def run(model_file):
    runner = CliRunner()

    def invoke(*args):
        result = runner.invoke(app, [str(a) for a in args] + ["--model", str(model_file), "--device", "cpu"])
        return result
    return invoke


@pytest.fixture
def scans(tmp_path, gray_photo, photo):
    root = tmp_path / "scans"
    (root / "1920s").mkdir(parents=True)
    cv2.imwrite(str(root / "camera.jpg"), gray_photo)
    cv2.imwrite(str(root / "1920s" / "coffee.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))
    return root


def test_single_file_writes_color_beside_it(run, scans):
    result = run("image", scans / "camera.jpg", "-r", "12")
    assert result.exit_code == 0, result.output
    out = cv2.imread(str(scans / "camera_color.jpg"))
    assert out.shape == (512, 512, 3)
    assert np.abs(out[:, :, 0].astype(int) - out[:, :, 2]).mean() > 1
    # published like any new file (umask), not with the temp file's private 0600
    mask = os.umask(0)
    os.umask(mask)
    assert (scans / "camera_color.jpg").stat().st_mode & 0o777 == 0o666 & ~mask


def test_colorize_alias_and_output_file(run, scans, tmp_path):
    result = run("colorize", scans / "camera.jpg", "-o", tmp_path / "x" / "named.png", "-r", "8")
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(tmp_path / "x" / "named.png")).shape == (512, 512, 3)


def test_folder_mirrors_under_out_with_compare_sheets(run, scans, tmp_path):
    out = tmp_path / "out"
    result = run("image", scans, "-o", out, "--compare", "-r", "8", "-b", "2")
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(out / "camera.jpg")).shape == (512, 512, 3)
    assert cv2.imread(str(out / "1920s" / "coffee.png")).shape == (400, 600, 3)
    sheet = cv2.imread(str(out / "1920s" / "coffee_compare.png"))
    assert sheet.shape[0] == 400 and sheet.shape[1] > 1200  # before | after
    assert sorted(p.name for p in scans.rglob("*")) == ["1920s", "camera.jpg", "coffee.png"]  # inputs untouched


def test_existing_outputs_are_refused_without_overwrite(run, scans):
    assert run("image", scans / "camera.jpg", "-r", "8").exit_code == 0
    target = scans / "camera_color.jpg"
    before = target.read_bytes()
    result = run("image", scans / "camera.jpg", "-r", "12")
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert target.read_bytes() == before
    assert run("image", scans / "camera.jpg", "-r", "12", "--overwrite").exit_code == 0
    assert target.read_bytes() != before


def test_folder_rerun_skips_its_own_outputs(run, scans):
    assert run("image", scans, "-r", "8").exit_code == 0
    result = run("image", scans, "-r", "8", "--overwrite")
    assert result.exit_code == 0, result.output
    assert not list(scans.rglob("*_color_color*"))


def test_inputs_are_never_overwritten(run, scans):
    original = (scans / "camera.jpg").read_bytes()
    result = run("image", scans, "-o", scans, "--overwrite", "-r", "8")
    assert result.exit_code != 0 and "overwrite an input" in result.output
    assert (scans / "camera.jpg").read_bytes() == original


def test_bad_files_fail_alone_and_are_reported(run, scans, tmp_path):
    (scans / "notes.jpg").write_text("this is not an image")
    (scans / "empty.png").write_bytes(b"")
    good = cv2.imencode(".jpg", np.full((300, 300), 90, np.uint8))[1].tobytes()
    (scans / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (scans / "folder.jpg").mkdir()
    huge = scans / "huge.png"
    cv2.imwrite(str(huge), np.zeros((2000, 2000), np.uint8))
    result = run("image", scans, tmp_path / "missing.jpg", "-o", tmp_path / "out", "-r", "8", "--max-pixels", "1000000")
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    for needle in ("not an image", "empty file", "truncated", "no such file", "over the limit"):
        assert needle in text, needle
    assert "Traceback" not in result.output
    out = tmp_path / "out" / "scans"  # several inputs: each keeps its own folder under -o
    assert (out / "camera.jpg").exists() and (out / "1920s" / "coffee.png").exists()


def test_rgba_png_keeps_alpha(run, tmp_path):
    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[..., :3] = 128
    rgba[..., 3] = np.arange(50, dtype=np.uint8)[None] * 5
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    assert run("image", tmp_path / "a.png", "-r", "7").exit_code == 0
    out = cv2.imread(str(tmp_path / "a_color.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == (40, 50, 4) and np.array_equal(out[..., 3], rgba[..., 3])


@pytest.mark.parametrize("args, needle", [
    (["image", "x.jpg", "-r", "99"], "less than or equal to 64"),
    (["image", "x.jpg", "--model", "nonexistent-model"], "unknown model"),
])
def test_usage_errors_exit_2_with_one_line(args, needle, tmp_path):
    cv2.imwrite(str(tmp_path / "x.jpg"), np.zeros((8, 8), np.uint8))
    result = CliRunner().invoke(app, [a if a != "x.jpg" else str(tmp_path / a) for a in args])
    assert result.exit_code == 2
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())  # unwrap Rich's error box
    assert needle in text and "Traceback" not in result.output


def test_help_does_not_import_torch():
    code = ("import sys, runpy; sys.argv = ['recolor', '--help']\n"
            "try:\n    runpy.run_module('recolor', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'cv2', 'av', 'huggingface_hub') if m in sys.modules]\n"
            "assert not heavy, heavy")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "image" in run.stdout


def test_models_lists_the_embedded_default():
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0 and "recolor-small" in result.output and "embedded" in result.output


@pytest.mark.slow
def test_non_editable_install_finds_the_embedded_model(tmp_path):
    """A wheel install (not editable) must carry weights/ inside the package."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q",
                          "--target", str(target), root], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr
    code = "from recolor.weights import resolve; p = resolve('default').path; assert p.with_suffix('.onnx').is_file(); print(p)"
    env = {**os.environ, "PYTHONPATH": str(target)}
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip().startswith(str(target)) and found.stdout.strip().endswith("recolor-small.safetensors")


def test_runtime_onnx_colours_like_torch(run, scans, tmp_path, monkeypatch):
    monkeypatch.setenv("RECOLOR_CACHE", str(tmp_path / "cache"))
    assert run("image", scans / "camera.jpg", "-r", "12", "-o", tmp_path / "torch.png", "--runtime", "torch").exit_code == 0
    result = run("image", scans / "camera.jpg", "-r", "12", "-o", tmp_path / "onnx.png", "--runtime", "onnx")
    assert result.exit_code == 0, result.output
    a, b = (cv2.imread(str(tmp_path / f"{n}.png")).astype(int) for n in ("torch", "onnx"))
    assert np.abs(a - b).max() <= 2


def test_unknown_runtime_is_a_usage_error(run, scans):
    result = run("image", scans / "camera.jpg", "--runtime", "tensorrt")
    assert result.exit_code == 2 and "unknown runtime" in result.output


def recolor_process(*args, columns=30):
    """The real command in its own process, in a terminal of `columns` columns."""
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "xterm"}
    return subprocess.run([sys.executable, "-m", "recolor", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


def test_same_names_under_one_out_are_refused_up_front_on_one_line(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "x.jpg"), np.zeros((8, 8), np.uint8))
    result = recolor_process("image", tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", "-o", tmp_path / "out")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()  # one line, even 30 columns wide
    assert line.startswith("error:") and "would both write" in line and str(tmp_path / "out" / "x.jpg") in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["image", "video", "train", "eval"])
def test_help_shows_every_option_text_as_written(command):
    """Square brackets in help texts (recolor[onnx], owner/repo[@rev], [HH:]MM:SS) are text, not markup."""
    import typer.main
    result = CliRunner().invoke(app, [command, "--help"], terminal_width=300, env={"COLUMNS": "300"})
    assert result.exit_code == 0
    shown = " ".join(result.output.split())
    click_command = typer.main.get_command(app).commands[command]
    for param in click_command.params:
        for part in re.findall(r"\S*\[[^\]]*\]\S*", getattr(param, "help", None) or ""):
            assert part in shown, part


def test_phone_photo_comes_out_upright(run, tmp_path, gray_photo):
    from PIL import Image
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90° clockwise: portrait
    Image.fromarray(gray_photo[:, :300]).save(tmp_path / "phone.jpg", exif=exif)
    assert run("image", tmp_path / "phone.jpg", "-r", "8").exit_code == 0
    assert cv2.imread(str(tmp_path / "phone_color.jpg")).shape == (300, 512, 3)


def test_skip_existing_resumes_without_redoing_finished_files(run, scans):
    assert run("image", scans, "-r", "8").exit_code == 0
    done = scans / "camera_color.jpg"
    stamp = done.stat().st_mtime_ns, done.stat().st_ino
    (scans / "1920s" / "coffee_color.png").unlink()  # the run was interrupted before this one
    result = run("image", scans, "-r", "8", "--skip-existing")
    assert result.exit_code == 0, result.output
    assert "skipped 1 inputs whose outputs exist" in result.output
    assert (done.stat().st_mtime_ns, done.stat().st_ino) == stamp
    assert (scans / "1920s" / "coffee_color.png").exists()
    assert run("image", scans, "--skip-existing", "--overwrite").exit_code == 2


def test_thousands_of_failures_stay_readable_and_are_listed(run, tmp_path):
    for i in range(45):
        (tmp_path / f"bad{i:02d}.jpg").write_text("not an image")
    result = run("image", tmp_path, "-o", tmp_path / "out", "--failures", tmp_path / "failed.tsv")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].startswith("45 failed, 0 done"), result.output
    assert len(lines) <= 25 and "and 25 more" in result.output
    assert any(line.split() == ["45", "not", "an", "image", "(unrecognised", "format)"] for line in lines)
    rows = (tmp_path / "failed.tsv").read_text().splitlines()
    assert len(rows) == 45 and rows[0] == f"{tmp_path / 'bad00.jpg'}\tnot an image (unrecognised format)"
