"""The real thing: `python -m captcha_vqa serve` (tests/conftest.py) driven by headless Chromium.

Needs Debian's ``chromium`` (``.ci/run`` installs it) and Playwright for Python (its driver
ships in the wheel; no browser download). Without chromium the test skips with the reason,
except under CI=true, where it fails: CI must run it.
"""

from __future__ import annotations

import os

import httpx
import numpy as np
import pytest
from vqa_helpers import COLOURS, draw_shape

from captcha.data import load_folder
from captcha_vqa.cli import main

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def need_browser():
    """Playwright's sync API, or a skip (a failure under CI) saying what is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "Playwright for Python is not installed (pip install -e '.[test]')"
    else:
        if os.access(CHROMIUM, os.X_OK):
            return sync_playwright
        missing = f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the browser test: {missing}")
    pytest.skip(missing)


@pytest.fixture(scope="module")
def page(live_server):
    sync_playwright = need_browser()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 390, "height": 900})  # a phone's width
        page.goto(live_server)
        yield page
        browser.close()


def test_page_reads_a_captcha_answers_a_question_and_shows_errors(page, live_server, captcha_data, tmp_path):
    server = live_server
    from playwright.sync_api import expect

    expect(page.locator("#status")).to_have_text("models loaded: captcha and vqa")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    # a CAPTCHA the model reads right (asked through the API) shows its text and boxes
    for sample in load_folder(captcha_data / "test"):
        with open(sample.path, "rb") as fh:
            reading = httpx.post(f"{server}/v1/captcha/read", files={"image": fh}).json()
        if reading["results"][0]["text"] == sample.label:
            break
    else:
        pytest.fail("the tiny model read none of the test CAPTCHAs")
    page.set_input_files("#captcha-file", str(sample.path))
    expect(page.locator("#captcha-text")).to_have_text(sample.label)
    expect(page.locator("#captcha-chars li")).to_have_count(4)
    assert page.locator("#captcha-canvas").bounding_box()["width"] > 100

    # a file that is not an image: the server's message, in the page
    text_file = tmp_path / "notes.png"
    text_file.write_text("not an image at all")
    page.set_input_files("#captcha-file", str(text_file))
    expect(page.locator("#captcha-error")).to_contain_text("not an image")
    expect(page.locator("#captcha-error")).to_contain_text("415")
    expect(page.locator("#captcha-result")).to_be_hidden()

    # a question about an image: the answers as bars, the same as the API's
    image = tmp_path / "blue-square.png"
    draw_shape("square", "blue", np.random.default_rng(3)).save(image)
    question = "what color is the shape?"
    with open(image, "rb") as fh:
        expected = httpx.post(
            f"{server}/v1/vqa/answer", files={"image": fh}, data={"question": question, "top": "3"}
        ).json()
    best = expected["results"][0]["answers"][0]["answer"]
    assert best in COLOURS
    page.set_input_files("#vqa-file", str(image))
    page.fill("#vqa-question", question)
    page.click("#vqa-ask")
    expect(page.locator("#vqa-answers li")).to_have_count(3)
    expect(page.locator("#vqa-answers li .label").first).to_have_text(best)
    assert page.locator("#vqa-answers li .fill").first.bounding_box()["width"] > 0  # a real bar

    # a sample is one click away
    page.click("#captcha-samples button >> nth=0")
    expect(page.locator("#captcha-result")).to_be_visible()


@pytest.mark.parametrize(
    "argv, words",
    [
        (["serve"], "name at least one model"),
        (["serve", "--captcha", "/no/such/model"], "model directory not found"),
        (["serve", "--vqa", "/no/such/model", "--workers", "0"], "--workers 0"),
    ],
)
def test_serve_command_fails_cleanly(argv, words, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("captcha-vqa: error: ") and words in err[0], err
