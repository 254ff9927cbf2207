"""The page of `recolor serve` in a real browser: headless Chromium (Debian's) through Playwright.

The real `recolor serve` runs as a subprocess (with a token, as on a network); every request the page makes to
anywhere but 127.0.0.1 is aborted and recorded, and each test asserts there were none: the page never leaves the
machine. Without Playwright or Chromium these tests skip; RECOLOR_REQUIRE_BROWSER=1 (CI) makes that a failure.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from browser import (DONE_S, card, expect, offline_page, require_browser, running_server,
                     save_shot, wait_done)

TOKEN = "page-t0ken"


@pytest.fixture(scope="module")
def need_browser():
    require_browser()


@pytest.fixture(scope="module")
def second_model(need_browser, model_file) -> Path:
    """A second model for the page's model choice (conftest's tiny one: every model takes hints)."""
    return model_file


@pytest.fixture(scope="module")
def server(need_browser, second_model):
    models = ("--model", "default", "--model", str(second_model))
    with running_server("--device", "cpu", "--token", TOKEN, *models) as server:
        yield server


@pytest.fixture(scope="module")
def photos(tmp_path_factory, gray_photo, photo) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("page-photos")
    files = {"camera": folder / "camera.png", "coffee": folder / "coffee gray.jpg", "junk": folder / "notes.png"}
    cv2.imwrite(str(files["camera"]), cv2.resize(gray_photo, (240, 200), interpolation=cv2.INTER_AREA))
    cv2.imwrite(str(files["coffee"]), cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[::2, ::2])
    files["junk"].write_text("not a photo")
    return files


def posted_form(request) -> str:
    return request.post_data_buffer.decode("latin-1")


def form_field(form: str, name: str) -> str:
    """A text field's value from a multipart body."""
    return form.split(f'name="{name}"')[1].split("\r\n\r\n", 1)[1].split("\r\n--", 1)[0]


# The colour image's pixels as the page holds them, drawn on a canvas: to see that a render changed them.
PIXELS = """async img => {
    await img.decode();  // the latest result, not the one before it
    const canvas = document.createElement('canvas');
    [canvas.width, canvas.height] = [img.naturalWidth, img.naturalHeight];
    const context = canvas.getContext('2d');
    context.drawImage(img, 0, 0);
    return Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data.filter((_, i) => i % 97 === 0));
}"""


# ----------------------------------------------------------------------------------------------- photos
def test_a_photo_through_the_page_slider_hint_reference_and_download(web, photos, second_model, tmp_path):
    page = web.page
    page.set_input_files("#pick", [str(photos["camera"])])
    wait_done(page, "camera.png")
    this = card(page, "camera.png")
    assert this.locator(".after").evaluate("img => [img.naturalWidth, img.naturalHeight]") == [240, 200]

    this.locator(".slider").fill("20")  # before | after split moves
    assert "20%" in this.locator(".after").evaluate("img => img.style.clipPath")

    # a hint: choose the other model, tick the box, pick a colour, click the photo -> it renders again
    page.select_option("#model", str(second_model))
    wait_done(page, "camera.png")
    plain = this.locator(".after").evaluate(PIXELS)
    this.locator(".hint-mode").check()
    this.locator(".hint-color").fill("#20a040")
    with page.expect_request(lambda r: r.url.endswith("/api/colorize") and r.method == "POST") as sent:
        this.locator(".compare").click(position={"x": 100, "y": 60})
    hints = json.loads(form_field(posted_form(sent.value), "hints"))
    assert hints["points"][0]["color"] == "#20a040" and 0 <= hints["points"][0]["x"] < 240
    assert this.locator(".point").count() == 1
    wait_done(page, "camera.png")
    assert this.locator(".after").evaluate(PIXELS) != plain  # the hint changed the colours
    regions = this.locator(".regions")  # the region the hint takes, laid over the photo
    expect(regions).to_have_count(1)
    regions.evaluate("img => img.decode()")
    assert regions.evaluate("img => img.naturalWidth") > 0  # at render size, stretched back over the photo
    box, photo_box = regions.bounding_box(), this.locator(".after").bounding_box()
    assert all(abs(box[k] - photo_box[k]) < 1 for k in ("x", "y", "width", "height"))
    save_shot(this, "hint_region")

    # a reference photo lends its palette: sent as the file part "reference"
    with page.expect_request(lambda r: r.url.endswith("/api/colorize") and r.method == "POST") as sent:
        this.locator(".reference").set_input_files(str(photos["coffee"]))
    assert 'name="reference"' in posted_form(sent.value)
    wait_done(page, "camera.png")

    with page.expect_download() as download:
        this.locator(".download").click()
    assert download.value.suggested_filename == "camera_color.png"
    saved = tmp_path / "camera_color.png"
    download.value.save_as(saved)
    rgb = cv2.cvtColor(cv2.imread(str(saved)), cv2.COLOR_BGR2RGB)
    assert rgb.shape == (200, 240, 3)
    assert np.abs(rgb[..., 0].astype(int) - rgb[..., 2]).mean() > 1  # in colour
    gray = cv2.imread(str(photos["camera"]), cv2.IMREAD_GRAYSCALE)
    l_out = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[..., 0]
    l_in = cv2.cvtColor(np.dstack([gray] * 3).astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[..., 0]
    assert np.abs(l_out - l_in).max() < 1.5  # only colour was added


def test_many_photos_at_once_all_come_back_and_download_as_a_zip(web, gray_photo, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    paths = []
    for i in range(20):
        paths.append(folder / f"scan_{i:02d}.png")
        cv2.imwrite(str(paths[-1]), np.ascontiguousarray(gray_photo[i * 10:i * 10 + 64, i * 12:i * 12 + 80]))
    page = web.page
    page.set_input_files("#pick", [str(p) for p in paths])
    expect(page.locator(".card[data-state='done']")).to_have_count(20, timeout=DONE_S * 1000)
    assert page.locator(".card .error:visible").count() == 0
    with page.expect_download() as download:
        page.click("#download-all")
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == [f"scan_{i:02d}_color.png" for i in range(20)]
    first = cv2.imdecode(np.frombuffer(archive.read("scan_00_color.png"), np.uint8), cv2.IMREAD_COLOR)
    assert first.shape == (64, 80, 3)


def test_photos_dropped_on_the_page_and_a_reference_dropped_on_a_photo(web, photos):
    page = web.page
    drop = """([selector, name, b64]) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], name, {type: 'image/png'}));
        document.querySelector(selector).dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true}));
    }"""
    import base64
    camera = base64.b64encode(photos["camera"].read_bytes()).decode()
    page.evaluate(drop, ["#drop", "dropped.png", camera])
    wait_done(page, "dropped.png")
    with page.expect_request(lambda r: r.url.endswith("/api/colorize")) as sent:
        page.evaluate(drop, [".card .compare", "palette.png", camera])
    assert 'name="reference"' in posted_form(sent.value)
    assert "palette.png" in card(page, "dropped.png").locator(".clear-reference").inner_text()
    wait_done(page, "dropped.png")


# An image that failed to show: in view, yet its pixels never arrived (the browser's broken-image icon).
BROKEN = "img => img.checkVisibility() && img.complete && img.naturalWidth === 0"


def test_a_bad_file_shows_its_own_error_and_the_rest_go_on(web, photos):
    page = web.page
    page.set_input_files("#pick", [str(photos["junk"]), str(photos["camera"])])
    wait_done(page, "camera.png")
    page.wait_for_selector(".card[data-state='failed']")
    failed = card(page, "notes.png")
    assert "not an image" in failed.locator(".error").inner_text()
    # nothing there to download or to look at: no Download, no broken image under a BEFORE badge
    for hidden in (".download", ".enlarge", ".tag-before", ".hint-mode"):
        expect(failed.locator(hidden)).to_be_hidden()
    assert not any(img.evaluate(BROKEN) for img in failed.locator("img").all())
    save_shot(failed, "failed_card")


def test_without_the_token_the_page_says_what_to_do(browser, server):
    page, elsewhere = offline_page(browser)
    page.goto(server.origin + "/")
    assert "token" in page.wait_for_selector("#banner:not([hidden])").inner_text()
    assert page.locator("#server").inner_text() == "not connected"  # not "connecting…" for ever
    page.context.close()
    assert elsewhere == []


# ----------------------------------------------------------------------------------------------- film
def test_a_film_uploaded_followed_previewed_and_downloaded(web, tmp_path):
    clip = tmp_path / "home movie.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(24):
            gray = np.full((64, 96), 60, np.uint8)
            cv2.circle(gray, (10 + 3 * i, 32), 12, 200, -1)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.dstack([gray] * 3), format="rgb24")))
        out.mux(stream.encode(None))
    page = web.page
    page.set_input_files("#film-file", str(clip))
    page.fill("#film-duration", "1")  # a slice: the first second
    page.click("#film-go")
    job = page.wait_for_selector(".job[data-state='done']")
    assert "12 frames" in job.query_selector(".status").inner_text()
    assert page.evaluate("document.querySelector('.job video').src").startswith(web.page.url.split("?")[0])
    with page.expect_download() as download:
        job.query_selector(".download").click()
    assert download.value.suggested_filename == "home movie_color.mp4"
    with av.open(download.value.path()) as film:
        frames = list(film.decode(video=0))
    assert len(frames) == 12 and (frames[0].width, frames[0].height) == (96, 64)
