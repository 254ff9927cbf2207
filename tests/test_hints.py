"""Guided colour: hint parsing, hints through the engine (for every model: no hint input, propagation holds them),
ONNX and the CLI, the reference palette, `recolor eval --hints`, and hints that stay where they are put."""
import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from recolor.cli import app
from recolor.hints import (Hint, HintError, color_ab, hint_planes, parse_hint, parse_hints_json, read_hints_file,
                           simulated_hints)
from recolor.reference import Palette


# ------------------------------------------------------------------------------------------- parsing
def test_css_names_and_hex_give_the_colour_chroma():
    a, b = color_ab("red")
    assert a > 60 and b > 50
    assert color_ab("#a03020") == color_ab("rgb(160, 48, 32)")
    assert color_ab("navy")[1] < -50  # blue: negative b
    assert np.allclose(color_ab("gray"), 0, atol=0.5)


@pytest.mark.parametrize("text, needle", [("120,340", "X,Y=COLOUR"), ("1,2,3=red", "X,Y=COLOUR"),
                                          ("a,b=red", "must be numbers"), ("1,2=reddish", "unknown colour")])
def test_bad_hints_name_the_problem(text, needle):
    with pytest.raises(HintError, match=needle):
        parse_hint(text)


def test_hint_argument_and_json_agree():
    assert parse_hint("120,340=#a03020") == Hint(120.0, 340.0, color_ab("#a03020"))
    hints, ref = parse_hints_json({"points": [{"x": 120, "y": 340, "color": "#a03020"}], "reference": "r.jpg"})
    assert hints == [parse_hint("120,340=#a03020")] and ref == "r.jpg"


@pytest.mark.parametrize("data, needle", [([], "JSON object"), ({"pints": []}, "unknown hints key"),
                                          ({"points": [{"x": 1}]}, "needs"),
                                          ({"points": [{"x": "1", "y": 2, "color": "red"}]}, "must be numbers"),
                                          ({"points": [{"x": 1, "y": 2, "color": 3}]}, "must be a string"),
                                          ({"points": {}}, "must be a list")])
def test_malformed_hint_json_is_refused(data, needle):
    with pytest.raises(HintError, match=needle):
        parse_hints_json(data)


def test_hints_file_errors_name_the_file_and_reference_is_relative_to_it(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(HintError, match="bad.json: not valid JSON"):
        read_hints_file(bad)
    good = tmp_path / "sub" / "h.json"
    good.parent.mkdir()
    good.write_text(json.dumps({"points": [{"x": 1, "y": 2, "color": "red"}], "reference": "ref.jpg"}))
    hints, ref = read_hints_file(good)
    assert len(hints) == 1 and ref == good.parent / "ref.jpg"


def test_planes_put_each_hint_at_its_scaled_place():
    planes = hint_planes([Hint(100, 50, (40.0, -20.0))], (200, 400), (64, 96))  # photo 400×200 -> 96×64
    ys, xs = np.nonzero(planes[2])
    assert planes.shape == (3, 64, 96)
    assert abs(xs.mean() - 24) <= 1 and abs(ys.mean() - 16) <= 1  # 100/400·96, 50/200·64
    assert np.allclose(planes[:2, ys, xs], np.array([[0.4], [-0.2]]))
    assert planes[:, planes[2] == 0].max() == 0


def test_simulated_hints_carry_the_true_colour():
    ab = np.zeros((50, 60, 2), np.float32)
    ab[:, 30:] = (30.0, 10.0)
    hints = simulated_hints(ab, 20, np.random.default_rng(0), patch=1)
    assert len(hints) == 20
    for h in hints:
        assert h.ab == ((30.0, 10.0) if h.x >= 30 else (0.0, 0.0))


# ------------------------------------------------------------------------------------------- engine
def test_hints_colour_their_spot_in_torch_and_onnx_alike(model_file, gray_photo):
    from recolor.engine import Colorizer
    torch_c = Colorizer.from_pretrained(str(model_file), "cpu", runtime="torch")
    onnx_c = Colorizer.from_pretrained(str(model_file), "cpu", runtime="onnx")
    hints = [parse_hint("100,100=red")]
    plain = torch_c.colorize(gray_photo, 10)
    hinted = torch_c.colorize(gray_photo, 10, hints=hints)
    assert np.abs(plain.astype(int) - hinted).max() > 10
    assert np.abs(onnx_c.colorize(gray_photo, 10, hints=hints).astype(int) - hinted).max() <= 2
    assert np.array_equal(onnx_c.colorize(gray_photo, 10).astype(int) // 3, plain.astype(int) // 3) or \
        np.abs(onnx_c.colorize(gray_photo, 10).astype(int) - plain).max() <= 2


def test_hints_must_be_inside_the_photo(colorizer, gray_photo):
    with pytest.raises(HintError, match="outside the 512×512 photo"):
        colorizer.colorize(gray_photo, 10, hints=[parse_hint("512,3=red")])


def test_palette_moves_the_mean_chroma_half_way_to_the_reference():
    reference = np.zeros((40, 40, 3), np.uint8)
    reference[:, :20] = (30, 60, 160)
    reference[:, 20:] = (160, 90, 40)
    palette = Palette.of(reference)
    ab = np.random.default_rng(0).normal((5, 10), (4, 40), (30, 20, 2)).astype(np.float32)
    moved = palette.apply(ab)
    assert np.allclose(moved.reshape(-1, 2).mean(axis=0), (ab.reshape(-1, 2).mean(axis=0) + palette.mean) / 2,
                       atol=1e-3)
    assert np.allclose(moved - moved.mean(axis=(0, 1)), ab - ab.mean(axis=(0, 1)), atol=1e-4)  # structure kept
    assert np.allclose(palette.apply(ab, 1.0).reshape(-1, 2).mean(axis=0), palette.mean, atol=1e-3)


def test_reference_moves_the_photo_towards_its_palette_and_keeps_luminance(colorizer, gray_photo):
    from recolor import color
    reference = np.full((40, 40, 3), (90, 110, 150), np.uint8)  # a muted blue every tone can hold
    target = Palette.of(reference).mean
    plain = colorizer.colorize(gray_photo, 10)
    guided = colorizer.colorize(gray_photo, 10, reference=reference)

    def distance(image):
        return np.abs(color.ab_of(image.astype(np.float32) / 255).reshape(-1, 2).mean(axis=0) - target).max()
    assert distance(guided) < 0.6 * distance(plain)  # half way, give or take gamut and rounding
    assert np.abs(color.luminance(guided) - color.luminance(gray_photo)).mean() < 1.0


# ------------------------------------------------------------------------------------------- CLI
@pytest.fixture
def gray_file(tmp_path):
    path = tmp_path / "g.png"
    cv2.imwrite(str(path), np.full((120, 160), 128, np.uint8))
    return path


@pytest.mark.parametrize("extra, needle", [
    (["--hint", "500,10=red"], "hint at 500,10 is outside the 160×120 photo"),
    (["--hint", "10,10=reddish"], "unknown colour 'reddish'"),
    (["--hints", "missing.json"], "missing.json: cannot read"),
    (["--hints", "bad.json"], 'point 1: needs "x", "y" and "color"'),
    (["--reference", "nothere.jpg"], "reference photo:"),
])
def test_bad_hints_exit_2_with_one_line(model_file, gray_file, extra, needle):
    (gray_file.parent / "bad.json").write_text('{"points": [{"x": 10}]}')
    extra = [str(gray_file.parent / e) if e.endswith((".json", ".jpg")) else e for e in extra]
    result = CliRunner().invoke(app, ["image", str(gray_file), *extra, "--model", str(model_file),
                                      "--device", "cpu"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.output


def test_cli_hints_need_one_photo(model_file, gray_file):
    result = CliRunner().invoke(app, ["image", str(gray_file), str(gray_file), "--hint", "1,1=red",
                                      "--model", str(model_file), "--device", "cpu"])
    assert result.exit_code == 2 and "exactly one input photo" in result.output
    assert not (gray_file.parent / "g_color.png").exists()


def test_cli_hint_file_and_reference_colour_the_photo(model_file, gray_file, tmp_path):
    cv2.imwrite(str(tmp_path / "ref.png"), np.full((30, 30, 3), (160, 60, 30), np.uint8))  # BGR: blue
    (tmp_path / "h.json").write_text(json.dumps({"points": [{"x": 80, "y": 60, "color": "#a03020"}],
                                                 "reference": "ref.png"}))
    result = CliRunner().invoke(app, ["image", str(gray_file), "--hints", str(tmp_path / "h.json"),
                                      "--hint", "10,10=navy", "--model", str(model_file), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(tmp_path / "g_color.png")).shape == (120, 160, 3)


# ------------------------------------------------------------------------------------------- eval
def test_eval_reports_the_hint_curve(model_file, tmp_path, photo):
    from recolor.cli.report import eval_tables
    from recolor.evaluate import EvalConfig, evaluate
    cv2.imwrite(str(tmp_path / "coffee_1.png"), photo[:, :, ::-1])
    result = evaluate(EvalConfig(str(tmp_path), str(model_file), 8, device="cpu", hints=(2, 10)))
    s = result.summary()
    assert {"hints2", "hints10"} <= s.keys() and s["hints10"]["delta_e"] != s["model"]["delta_e"]
    assert len(eval_tables(result)) == 3
    far, spot = result.locality()["far"], result.locality()["spot"]  # one wrong hint at the centre
    assert 0 <= far < 2.0 and spot > 0.6
    again = evaluate(EvalConfig(str(tmp_path), str(model_file), 8, device="cpu", hints=(10,)))
    assert again.summary()["hints10"] == s["hints10"]  # simulated hints are seeded by the photo


# ------------------------------------------------------------------------------------------- propagation
def square_scene() -> np.ndarray:
    """A gray square as light as pure red (L 53, so red fits the gamut there) on a dark ground, 240×320."""
    image = np.full((240, 320), 40, np.uint8)
    image[60:180, 40:160] = 126
    return image


def test_a_red_hint_turns_its_region_red_and_leaves_the_far_side_as_it_was(tmp_path):
    import torch
    from recolor import color
    from recolor.engine import Colorizer
    from recolor.model import ModelConfig, create_model
    torch.manual_seed(0)
    colorizer = Colorizer.from_model(create_model(ModelConfig()), "cpu")
    gray = square_scene()
    red = parse_hint("100,120=#ff0000")
    before, after = colorizer.colorize(gray, 10), colorizer.colorize(gray, 10, hints=[red])
    ab = color.ab_of(after.astype(np.float32) / 255)
    inside = ab[70:170, 50:150].reshape(-1, 2)
    assert np.abs(inside - np.array(red.ab)).max(axis=0).max() < 10  # the square is red...
    assert np.array_equal(after[:, 200:], before[:, 200:])  # ...the far side is untouched
    assert np.abs(color.luminance(after) - color.luminance(gray)).max() < 1.0  # and the photo keeps its L


def test_one_hint_changes_its_region_and_not_the_far_side_of_a_photo(colorizer, gray_photo):
    from recolor.hints import locality
    grass = parse_hint("420,400=#ff0000")  # camera.png: the grass, right of the tripod
    before, after = colorizer.colorize(gray_photo, 16), colorizer.colorize(gray_photo, 16, hints=[grass])
    far, spot = locality(before, after, grass)
    assert far < 2.0  # the coat, the sky and the buildings as they were (the old global spread: ~40)
    assert spot > 0.8  # the hinted spot takes the asked red, as far as its luminance allows


def test_two_hints_of_two_colours_each_hold_their_object_and_the_rest_stays(colorizer, gray_photo):
    from recolor import color
    from recolor.hints import locality
    coat, sky = parse_hint("80,330=#ff0000"), parse_hint("100,60=#0040ff")
    before, after = colorizer.colorize(gray_photo, 16), colorizer.colorize(gray_photo, 16, hints=[coat, sky])
    for hint in (coat, sky):
        assert locality(before, after, hint)[1] > 0.8
    ab0, ab1 = (color.ab_of(im.astype(np.float32) / 255) for im in (before, after))
    change = np.linalg.norm(ab1 - ab0, axis=-1)
    assert change[380:460, 380:460].mean() < 2.0  # the grass far right: neither red nor blue
    hue = np.degrees(np.arctan2(ab1[..., 1], ab1[..., 0]))
    assert np.median(hue[300:360, 40:120]) == pytest.approx(np.degrees(np.arctan2(coat.ab[1], coat.ab[0])), abs=15)
    assert np.median(hue[30:90, 60:140]) == pytest.approx(np.degrees(np.arctan2(sky.ab[1], sky.ab[0])), abs=15)


def test_no_hints_give_exactly_the_automatic_result(colorizer, gray_photo):
    plain = colorizer.colorize(gray_photo, 10)
    assert np.array_equal(plain, colorizer.colorize(gray_photo, 10, hints=[]))
    pair = colorizer.colorize_batch([gray_photo, gray_photo], 10, 2)  # one network call for both
    hinted, unhinted = colorizer.colorize_batch([gray_photo, gray_photo], 10, 2, [["5,5=red"], None])
    assert np.array_equal(unhinted, pair[1]) and not np.array_equal(hinted, pair[0])


def test_the_asked_colour_is_gamut_mapped_by_chroma_keeping_its_hue():
    from recolor import color
    from recolor.propagation import gamut_ab
    l = np.array([20.0, 53.0, 90.0], np.float32)
    red = np.tile(np.float32(color_ab("#ff0000")), (3, 1))
    mapped = gamut_ab(l, red)
    assert np.allclose(mapped[1], red[1], atol=0.5)  # pure red's own L: it fits
    for row in (0, 2):  # too dark and too light for pure red: less chroma, the same hue, and it fits
        assert np.hypot(*mapped[row]) < np.hypot(*red[row]) - 10
        assert np.degrees(abs(np.arctan2(mapped[row, 1], mapped[row, 0]) - np.arctan2(red[row, 1], red[row, 0]))) < 0.5
        lin = color.lab_to_linear_rgb(np.array([[l[row], *mapped[row]]], np.float32))
        assert lin.min() > -1e-3 and lin.max() < 1 + 1e-3


def test_hint_regions_show_each_hints_share_in_the_order_given():
    from recolor.propagation import hint_regions
    l = square_scene().astype(np.float32) / 2.55
    regions = hint_regions(l, [(120, 100), (120, 260)])  # (row, col): in the square, and on the ground
    assert regions.shape == (2, 240, 320)
    assert regions[0, 70:170, 50:150].min() > 0.5 and regions[0, :, 200:].max() < 0.05
    assert regions[1, 70:170, 50:150].max() < 0.05 and regions[1, 100:140, 240:280].min() > 0.5
    assert hint_regions(l, []).shape == (0, 240, 320)


def test_propagation_stops_at_edges_and_needs_a_hint():
    from recolor.propagation import propagate
    l = square_scene().astype(np.float32) / 2.55
    ab = np.full((240, 320, 2), 5.0, np.float32)
    assert propagate(ab, l, np.zeros((3, 240, 320), np.float32)) is ab
    planes = hint_planes([Hint(100, 120, (40.0, -30.0))], l.shape, l.shape)
    out = propagate(ab, l, planes)
    assert np.allclose(out[110:130, 90:110], (40.0, -30.0), atol=1)  # the hinted spot takes the colour ...
    held = (out[65:175, 45:155] - 5.0) / (np.float32((40.0, -30.0)) - 5.0)
    assert held.min() > 0.8  # ... and so does its square, fading a little with distance ...
    assert np.array_equal(out[:40], ab[:40]) and np.array_equal(out[:, 200:], ab[:, 200:])  # ... but not beyond it


def test_the_python_api_takes_hints_as_objects_strings_or_dicts(model_file, gray_photo):
    from recolor import Colorizer, Hint
    colorizer = Colorizer.from_pretrained(str(model_file), "cpu", runtime="torch")
    as_object = colorizer.colorize(gray_photo, 10, hints=[Hint(100.0, 100.0, color_ab("red"))])
    assert np.array_equal(as_object, colorizer.colorize(gray_photo, 10, hints=["100,100=red"]))
    assert np.array_equal(as_object, colorizer.colorize(gray_photo, 10, hints=[{"x": 100, "y": 100, "color": "red"}]))


def test_the_shipped_default_takes_hints_and_a_red_hint_holds_there_only():
    from recolor import color
    from recolor.engine import Colorizer
    colorizer = Colorizer.from_pretrained("default", "cpu")  # the CPU runtime, as a user gets it
    gray = square_scene()
    red = parse_hint("100,120=#ff0000")
    before, after = colorizer.colorize(gray, 10), colorizer.colorize(gray, 10, hints=[red])
    ab = color.ab_of(after.astype(np.float32) / 255)
    off = np.abs(ab[70:170, 50:150].reshape(-1, 2) - np.array(red.ab)).max(1)
    # the correction is smooth, so the network's own small variations across the square stay (up to ~10 units)
    assert np.median(off) < 3 and np.percentile(off, 99) < 10 and off.max() < 15
    assert np.array_equal(after[:, 200:], before[:, 200:])


def test_the_web_api_shows_the_region_each_hint_takes(colorizer, gray_photo):
    from fastapi.testclient import TestClient
    from recolor.serve import ServeConfig
    from recolor.serve.app import create_app
    with TestClient(create_app({"tiny": colorizer}, ServeConfig()), base_url="http://127.0.0.1:8000") as client:
        png = cv2.imencode(".png", gray_photo)[1].tobytes()
        hints = json.dumps({"points": [{"x": 420, "y": 400, "color": "red"}]})
        response = client.post("/api/hint-regions", files={"file": ("camera.png", png)},
                               data={"hints": hints, "render_factor": "16"})
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        overlay = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)  # BGRA, render size
        alpha = overlay[..., 3]
        y, x = 400 * alpha.shape[0] // 512, 420 * alpha.shape[1] // 512
        assert alpha[y, x] > 0 and overlay[y, x, 2] > overlay[y, x, 1]  # tinted red at the hint ...
        assert alpha[: alpha.shape[0] // 4, : alpha.shape[1] // 4].max() == 0  # ... and nothing over the sky
        bad = client.post("/api/hint-regions", files={"file": ("camera.png", png)},
                          data={"hints": json.dumps({"points": [{"x": 900, "y": 1, "color": "red"}]})})
        assert bad.status_code == 400 and "outside the 512×512 photo" in bad.json()["error"]


def test_share_of_way_counts_only_the_move_towards_the_asked_colour():
    from recolor.hints import share_of_way
    start, target = np.array([0.0, 0.0]), np.array([40.0, 0.0])
    assert share_of_way(start, np.array([20.0, 0.0]), target) == pytest.approx(0.5)
    assert share_of_way(start, np.array([20.0, 30.0]), target) == pytest.approx(0.5)  # sideways does not count
    assert share_of_way(start, np.array([-10.0, 0.0]), target) == pytest.approx(-0.25)  # away is negative
