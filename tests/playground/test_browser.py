"""The playground in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by selenium) clicks an entity, presses an action key and the test
checks on the page's own image that the frame changed near that entity and nowhere else.

The world model is the toy one (exact by construction, ``tests/playground/toy.py``), so the test
checks the page, the server and the session together, not a learned model.
"""

from __future__ import annotations

import io
import shutil
import socket
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentrl.playground.server import create_app
from latentrl.playground.session import PlaySession
from tests.playground.toy import GRID, TOKEN_PX, sprite_centres, toy_run

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1100,800",
)

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).is_file() and Path(DRIVER).is_file()),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them: apt-get install "
    "-y chromium chromium-driver)",
)


def serve(session: PlaySession) -> Iterator[str]:
    """Serve the playground on a free port in a thread; yields its address."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(session), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


def chromium(profile: Path):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)


def page_frame(browser) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The frame the page shows, fetched from the ``src`` of its image and scaled back to frame
    pixels."""
    src = browser.find_element("id", "frame").get_attribute("src")
    with urllib.request.urlopen(src) as r:
        img = np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))
    scale = img.shape[0] // (GRID * TOKEN_PX)
    return img[::scale, ::scale]


def wait_for(browser, check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(lambda b: check(b))


@pytest.fixture
def browser_on_toy(tmp_path: Path) -> Iterator[tuple[object, PlaySession]]:
    session = PlaySession(toy_run(tmp_path), horizon=8)
    gen = serve(session)
    url = next(gen)
    with tempfile.TemporaryDirectory() as profile:
        browser = chromium(Path(profile))
        try:
            browser.get(url)
            wait_for(
                browser, lambda b: b.find_element("id", "frame").get_attribute("data-loaded") == "1"
            )
            yield browser, session
        finally:
            browser.quit()
            gen.close()


def test_click_an_entity_press_an_action_and_only_it_moves(
    browser_on_toy: tuple[object, PlaySession],
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    browser, session = browser_on_toy
    before = page_frame(browser)
    assert np.array_equal(before, session.frames[0].image)
    x, y = sprite_centres(session.frames[0].codes[0])[1]
    img = browser.find_element("id", "frame")
    scale = img.size["width"] / (GRID * TOKEN_PX)
    # Click the sprite: offsets are from the image's centre in selenium 4.
    ActionChains(browser).move_to_element_with_offset(
        img, int((x - GRID * TOKEN_PX / 2) * scale), int((y - GRID * TOKEN_PX / 2) * scale)
    ).click().perform()
    wait_for(browser, lambda b: "slots [1]" in b.find_element("id", "selected").text)
    # Code buttons are labelled by index (no decoder); code 5 moves right: its key is "6".
    labels = [b.text for b in browser.find_elements("css selector", "button.code")]
    assert labels[5].startswith("code 5")
    browser.find_element("tag name", "body").send_keys("6")
    wait_for(browser, lambda b: b.find_element("id", "frame").get_attribute("data-step") == "1")
    after = page_frame(browser)
    diff = np.abs(after.astype(int) - before.astype(int)).max(-1) > 0
    ys, xs = np.nonzero(diff)
    assert diff.any(), "the frame did not change"
    # Changed only within one token of the clicked sprite (it moved one token right).
    assert xs.min() >= x - TOKEN_PX and xs.max() <= x + 1.5 * TOKEN_PX
    assert ys.min() >= y - TOKEN_PX and ys.max() <= y + TOKEN_PX
    far = np.ones_like(diff)
    far[int(y - TOKEN_PX) : int(y + TOKEN_PX), int(x - TOKEN_PX) : int(x + 2 * TOKEN_PX)] = False
    assert not diff[far].any()
    assert "ms" in browser.find_element("id", "latency").text

    # Undo goes back to the start frame; the button is disabled at the start.
    browser.find_element("id", "undo").click()
    wait_for(browser, lambda b: b.find_element("id", "frame").get_attribute("data-step") == "0")
    assert np.array_equal(page_frame(browser), before)
    assert not browser.find_element("id", "undo").is_enabled()


def test_outlines_and_downloads_from_the_page(browser_on_toy: tuple[object, PlaySession]) -> None:
    browser, _ = browser_on_toy
    plain = page_frame(browser)
    browser.find_element("id", "outlines").click()
    wait_for(browser, lambda b: "outlines=1" in b.find_element("id", "frame").get_attribute("src"))
    src = browser.find_element("id", "frame").get_attribute("src")
    with urllib.request.urlopen(src) as r:
        outlined = np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))
    assert outlined.shape[0] > plain.shape[0] and not np.array_equal(
        outlined[:: outlined.shape[0] // plain.shape[0]][:, :: outlined.shape[0] // plain.shape[0]],
        plain,
    )
    base = browser.current_url.rstrip("/")
    with urllib.request.urlopen(base + "/download.gif") as r:
        assert r.headers["Content-Type"] == "image/gif" and r.read(6) in (b"GIF89a", b"GIF87a")
    with urllib.request.urlopen(base + "/download.mp4") as r:
        assert r.headers["Content-Type"] == "video/mp4" and b"ftyp" in r.read(16)
