"""The page of `recolor serve` as it looks and behaves in headless Chromium (Debian's): what shows when, the full-size
view, the layout at several widths, and the settings it takes from the server rather than restating them.

As in test_serve_browser.py, the real server runs as a subprocess and no request may leave 127.0.0.1. With
RECOLOR_SHOTS=<folder>, the tests save screenshots there of a failed film, a running one and the full-size view.
"""
from __future__ import annotations

import re
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from browser import Page, card, expect, offline_page, require_browser, running_server, save_shot, \
    wait_done

# The text nodes of these that take more than one line (none should: a wrapped button looks broken).
WRAPPED = """els => els.filter(e => e.checkVisibility()).flatMap(e => [...e.childNodes]
    .filter(n => n.nodeType === Node.TEXT_NODE && n.textContent.trim())
    .map(n => { const r = document.createRange(); r.selectNodeContents(n); return [n.textContent.trim(),
                                                                                r.getClientRects().length]; }))
    .filter(([, lines]) => lines > 1)"""
BOX = "e => { const b = e.getBoundingClientRect(); return [e.className, b.x, b.y, b.width, b.height]; }"


@pytest.fixture(scope="module")
def server():
    require_browser()
    with running_server("--device", "cpu") as server:
        yield server


@pytest.fixture(scope="module")
def photos(tmp_path_factory, gray_photo) -> dict[str, Path]:
    """A landscape and a portrait photo, so that cards of one row differ in height."""
    folder = tmp_path_factory.mktemp("layout-photos")
    files = {"wide": folder / "wide.png", "tall": folder / "tall.png"}
    cv2.imwrite(str(files["wide"]), cv2.resize(gray_photo[100:400], (240, 120), interpolation=cv2.INTER_AREA))
    cv2.imwrite(str(files["tall"]), cv2.resize(gray_photo[:, 150:350], (120, 300), interpolation=cv2.INTER_AREA))
    return files


def write_clip(path: Path, frames: int, size=(96, 64), rate: int = 12) -> Path:
    """A gray H.264 clip of a bright disc crossing a dark field."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            gray = np.full(size[::-1], 60, np.uint8)
            cv2.circle(gray, ((10 + 3 * i) % size[0], size[1] // 2), size[1] // 5, 200, -1)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.dstack([gray] * 3), format="rgb24")))
        out.mux(stream.encode(None))
    return path


# ----------------------------------------------------------------------------------------------- the full-size view
def test_a_result_opens_full_size_with_its_slider_and_closes_with_esc_or_its_button(web, photos):
    page = web.page
    page.set_input_files("#pick", str(photos["wide"]))
    wait_done(page, "wide.png")
    this, viewer = card(page, "wide.png"), page.locator("#viewer")
    expect(viewer).to_be_hidden()
    this.locator(".enlarge").click()
    expect(viewer).to_be_visible()
    assert viewer.locator(".after").get_attribute("src") == this.locator(".after").get_attribute("src")
    small, large = this.locator(".compare").bounding_box(), viewer.locator(".compare").bounding_box()
    assert large["width"] > 2.5 * small["width"]  # large: as wide as the window lets a 2:1 photo be
    assert large["height"] == pytest.approx(large["width"] / 2, abs=2)  # the photo's own shape: the halves line up
    viewer.locator(".slider").fill("30")
    assert "30%" in viewer.locator(".after").evaluate("img => img.style.clipPath")
    assert viewer.locator(".divider").evaluate("d => d.style.left") == "30%"
    for img in viewer.locator("img").all():
        img.evaluate("img => img.decode()")
    save_shot(page, "full_size_view")
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    this.locator(".enlarge").click()
    expect(viewer).to_be_visible()
    viewer.locator(".close").click()
    expect(viewer).to_be_hidden()


# ----------------------------------------------------------------------------------------------- layout
def test_cards_are_as_tall_as_their_photo_and_buttons_keep_their_place(web, photos):
    page = web.page
    page.set_input_files("#pick", [str(photos["wide"]), str(photos["tall"])])
    wait_done(page, "wide.png")
    wait_done(page, "tall.png")
    for el in page.locator(".card").all():  # the wide card ends under its own last row, not the tall one's
        gap = el.evaluate("""card => card.getBoundingClientRect().bottom - Math.max(...[...card.children]
            .filter(c => c.checkVisibility()).map(c => c.getBoundingClientRect().bottom))""")
        assert gap <= 12, gap  # its padding and border

    this = card(page, "wide.png")
    controls = this.locator(".tools > :not(.clear-hints)")
    before = controls.evaluate_all(f"els => els.filter(e => e.checkVisibility()).map({BOX})")
    this.locator(".hint-mode").check()
    this.locator(".compare").click(position={"x": 60, "y": 40})
    expect(this.locator(".clear-hints")).to_be_visible()
    wait_done(page, "wide.png")
    assert controls.evaluate_all(f"els => els.filter(e => e.checkVisibility()).map({BOX})") == before


@pytest.mark.parametrize("width", [1200, 960, 640, 360])
def test_no_button_or_label_wraps(browser, server, photos, width):
    web = Page(browser, server, width=width)
    web.page.set_input_files("#pick", str(photos["wide"]))
    wait_done(web.page, "wide.png")
    web.page.set_input_files("#film-file", str(photos["wide"]))  # any file: it enables "Colorize film"
    assert web.page.locator("button, .button, .controls label, .film-form label").evaluate_all(WRAPPED) == []
    web.page.context.close()
    assert web.elsewhere == []


# ----------------------------------------------------------------------------------------------- settings
def test_the_page_takes_render_factors_suffixes_and_job_states_from_the_server(browser, server):
    """/api/health answered with other values than this server's: the page must follow them."""
    page, elsewhere = offline_page(browser)

    def health(route) -> None:
        response = route.fetch()
        settings = {**response.json(), "render_factor": {"min": 10, "max": 50, "photo": 30, "film": 12},
                    "suffixes": {"photo": [".png", ".jpg"], "film": [".mp4", ".reel"]}}
        route.fulfill(response=response, json=settings)

    page.route("**/api/health", health)
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']")
    rf, film_rf = page.locator("#rf"), page.locator("#film-rf")
    assert [rf.get_attribute("min"), rf.get_attribute("max"), rf.input_value()] == ["10", "50", "30"]
    assert [film_rf.get_attribute("max"), film_rf.input_value(), page.locator("#film-rf-value").inner_text()] == \
        ["50", "12", "12"]
    assert page.locator("#pick").get_attribute("accept") == ".png,.jpg"
    assert ".reel" in page.locator("#film-file").get_attribute("accept").split(",")
    assert page.locator("#photo-suffixes").inner_text() == "PNG, JPG"
    page.evaluate("""() => {  // a file of an unknown type named .reel, dropped: it is taken as a film
        const data = new DataTransfer();
        data.items.add(new File([new Uint8Array(8)], 'home.reel'));
        document.querySelector('#drop').dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true}));
    }""")
    assert page.locator("#film-name").inner_text() == "home.reel" and page.locator(".card").count() == 0
    page.context.close()
    assert elsewhere == []


# ----------------------------------------------------------------------------------------------- films
def test_a_running_film_shows_its_progress_and_nothing_to_download(web, tmp_path):
    page = web.page
    clip = write_clip(tmp_path / "long reel.mp4", frames=240, size=(160, 120))  # 20 s: minutes at this factor
    page.set_input_files("#film-file", str(clip))
    page.locator("#film-rf").fill(page.locator("#film-rf").get_attribute("max"))
    page.click("#film-go")
    job = page.locator(".job")
    expect(job.locator(".status")).to_have_text(re.compile(r"^frame [1-9]\d* of 240$"))
    assert job.get_attribute("data-state") == "running"
    for hidden in (".download", ".preview", ".error"):
        expect(job.locator(hidden)).to_be_hidden()
    assert 0 < float(job.locator(".progress").evaluate("p => p.value")) < 1
    save_shot(page.locator("#film"), "running_film")
    with page.expect_request(lambda r: r.method == "DELETE"):
        job.locator(".cancel").click()
    expect(job).to_have_count(0)


def test_a_film_that_fails_says_why_in_the_pages_words_and_offers_no_download(web, tmp_path):
    page = web.page
    page.set_input_files("#film-file", str(write_clip(tmp_path / "short.mp4", frames=12)))
    page.fill("#film-start", "100")  # past its end
    page.click("#film-go")
    job = page.locator(".job[data-state='failed']")
    message = job.locator(".error").inner_text()
    assert "start time 100 s" in message and "--" not in message, message
    for hidden in (".download", ".preview"):
        expect(job.locator(hidden)).to_be_hidden()
    expect(job.locator(".cancel")).to_have_text("Remove")
    save_shot(page.locator("#film"), "failed_film")
