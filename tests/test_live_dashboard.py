"""The dashboard page (http://127.0.0.1:PORT/) in real headless Chromium, with a real server and client.

Playwright drives the Debian chromium binary; `playwright install` is never run.
"""

import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from inference_server.client import LiveClient
from inference_server.protocol import dashboard_url
from privastream_testkit.processes import wait_until
from privastream_testkit.server import TARGETS_OFF, ServerProcess

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def server(tmp_path):
    proc = ServerProcess(tmp_path / "server.json", "--no-preload").start()
    yield proc
    proc.stop()


def test_dashboard_shows_live_figures_per_client(server, tmp_path):
    from playwright.sync_api import sync_playwright

    client = LiveClient(source="Webcam <b>", settings=TARGETS_OFF, state_file=server.state_file, delay_s=0.5)
    try:
        wait_until(lambda: client.status.state == "connected", 5.0)
        frame = np.zeros((180, 320, 4), np.uint8)
        for i in range(20):
            client.submit_frame(i, i / 30, frame)
            time.sleep(1 / 30)
        wait_until(lambda: client.frame_decision(19) is not None, 1.0)
        with sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(str(tmp_path / "profile"),
                                                            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                errors = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(dashboard_url("127.0.0.1", server.port, server.token))
                page.wait_for_selector(".session h2", timeout=5000)
                card = page.locator(".session").first
                # The source name is shown as text, never interpreted as markup.
                assert card.locator("h2").inner_text().startswith("Webcam <b> · video")
                assert card.locator("b").count() == 0
                text = card.inner_text()
                assert "frames in / out\t20 / 20" in text
                assert "deadline misses\t0" in text and "fail-closed\t0" in text
                assert "estimates that missed a region\t0" in text
                assert page.locator(".hist div").count() == 11  # latency histogram bars
                assert page.locator("#link").inner_text() == "live"
                assert "detection" in page.locator("#cpu").inner_text()  # the worker processes count too
                assert "detection" in page.locator("#rss").inner_text()
                assert page.locator("#gpu").inner_text() != "–"
                client.close()
                page.wait_for_selector("p.empty", timeout=5000)  # the session leaves the page when it closes
                assert errors == []
            finally:
                browser.close()
    finally:
        client.close()


def test_without_its_key_the_page_shows_no_figures(server, tmp_path):
    """The page itself is served to anyone; what it shows is not."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path="/usr/bin/chromium",
                                                        args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.port}/")
            page.wait_for_function("document.getElementById('link').textContent.includes('no dashboard key')",
                                   timeout=5000)
            assert page.locator("#nsessions").inner_text() == "–"
        finally:
            browser.close()


def test_other_hosts_and_paths_are_refused(server):
    """DNS rebinding: a page on another name that resolves to 127.0.0.1 gets nothing."""
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}/stats.json", headers={"Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/../server.json", timeout=5)
    assert err.value.code == 404
