"""The dashboard's browser tests: a real server on loopback (the preloaded LLM, the vision
stand-ins) and Debian's Chromium driven by Playwright, with a fake microphone fed a WAV."""

from __future__ import annotations

import sys
import wave
from pathlib import Path

import pytest

from support import TESTS, Server

TOKEN = "dashboard-test-token"
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).parent / "screenshots"
QUESTION = "What is the capital of France?"
# Chromium as the machine notes say it runs here: no sandbox as root, no GPU, and no background
# connections (the closed network refuses them, many at a time).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="package")
def question_wav(tmp_path_factory) -> tuple[Path, float]:
    """The spoken question, synthesised with Piper at test time; its length in seconds."""
    sys.path.insert(0, str(TESTS / "voice"))
    from speech import utterance

    from emberflow.voice import pcm

    audio = utterance(0.4, QUESTION, 0.6)
    path = tmp_path_factory.mktemp("mic") / "question.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(pcm.RATE)
        w.writeframes(audio.tobytes())
    return path, len(audio) / pcm.RATE


@pytest.fixture(scope="package")
def dash_server(tmp_path_factory):
    units = {"camera": "dashboard.vision_units:FakeCamera", "yolo": "dashboard.vision_units:FakeYolo"}
    s = Server(
        tmp_path_factory.mktemp("dashboard"),
        config={
            "token": TOKEN,
            "preload": ["llm"],
            "units": {
                **{
                    "echo": "units_for_tests:EchoUnit",
                    "ticker": "units_for_tests:TickerUnit",
                    "tally": "units_for_tests:TallyUnit",
                },
                **units,
            },
        },
    )
    assert s.http_port, "".join(s.log)
    yield s
    s.stop()


@pytest.fixture(scope="package")
def base_url(dash_server) -> str:
    return f"http://127.0.0.1:{dash_server.http_port}"


@pytest.fixture(scope="package")
def browser(question_wav):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    wav, _ = question_wav
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*FLAGS, f"--use-file-for-fake-audio-capture={wav}%noloop"]
        )
        yield b
        b.close()


class Console:
    """Every console error and uncaught exception of a page."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))


@pytest.fixture
def page(browser, base_url):
    """A new page with the token already given (the page asks once and keeps it)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1800}, base_url=base_url)
    context.add_init_script(f"if (window === window.top) localStorage.setItem('emberflow-token', {TOKEN!r})")
    pg = context.new_page()
    pg.console = Console(pg)
    yield pg
    context.close()


def screenshot(page, name: str) -> Path:
    """Written for reviewers (tests/dashboard/screenshots/), and the README shows one."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
