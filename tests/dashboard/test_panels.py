"""The dashboard's action panels in a real Chromium: push-to-talk through the fake microphone,
the camera preview with detection boxes, a toolchain report, and actions with and without the
token."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from dashboard.conftest import TOKEN, screenshot
from dashboard.test_page import open_dashboard, task_row
from emberflow.client import ServerError

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "toolchain"


def test_push_to_talk_gives_a_transcript_an_answer_and_a_waterfall(page, question_wav):
    _, seconds = question_wav
    open_dashboard(page)
    page.click("#ptt-setup")
    expect(page.locator("#ptt")).to_be_visible(timeout=180_000)  # asr, llm and tts tasks are set up
    button = page.locator("#ptt")
    button.hover()
    page.mouse.down()
    # hold the button until the page has posted the whole recording (the fake microphone plays
    # the WAV once from the moment it opens), then let go
    page.wait_for_function(f"Number(document.getElementById('ptt').dataset.pushed || 0) >= {seconds}", timeout=60_000)
    page.mouse.up()
    expect(page.locator("#heard")).to_contain_text(re.compile("capital of France", re.I), timeout=120_000)
    expect(page.locator("#answer")).to_contain_text("Paris", timeout=120_000)
    expect(page.locator("#answer-audio")).to_be_visible(timeout=60_000)  # the spoken answer reached the page
    expect(page.locator('#waterfall [data-stage="end_to_end"]')).to_be_visible(timeout=60_000)
    for stage in ("end_of_speech_wait", "asr", "llm_first_token", "tts_first_audio"):
        expect(page.locator(f'#waterfall [data-stage="{stage}"]')).to_have_count(1)
    expect(page.locator("#turns tbody tr").first).to_contain_text(re.compile("capital of France", re.I))
    screenshot(page, "voice-turn")
    assert page.console.errors == []


def test_camera_panel_shows_frames_with_boxes_only_while_a_camera_runs(page, dash_server):
    open_dashboard(page)
    expect(page.locator("#camera")).to_be_hidden()
    with dash_server.client(timeout=60) as c:
        assert c.request("sys", "auth", data=TOKEN)["error"]["code"] == 0
        cam = c.setup(
            "camera",
            {
                "response_format": "camera.raw",
                "input": "/dev/video0",
                "frame_width": 320,
                "frame_height": 240,
                "enoutput": False,
            },
        )
        yolo = c.setup("yolo", {"model": "yolo11n", "response_format": "yolo.box", "input": [cam], "enoutput": False})
        expect(page.locator("#camera")).to_be_visible(timeout=10_000)
        canvas = page.locator("#camera-canvas")
        expect(canvas).to_have_attribute("data-boxes", "1", timeout=20_000)
        first = int(canvas.get_attribute("data-seq"))
        page.wait_for_function(f"Number(document.getElementById('camera-canvas').dataset.seq) > {first}")  # live
        assert canvas.evaluate("c => [c.width, c.height]") == [320, 240]
        screenshot(page, "camera")
        c.exit(yolo)
        c.exit(cam)
    expect(page.locator("#camera")).to_be_hidden(timeout=10_000)
    assert page.console.errors == []


def test_models_panel_embeds_the_toolchain_report_of_an_uploaded_model(page):
    open_dashboard(page)
    expect(page.locator("#models tbody tr").first).to_be_visible(timeout=10_000)
    page.set_input_files("#report-upload", str(FIXTURES / "digits_cnn.onnx"))
    expect(page.locator("#report-file")).not_to_have_value("", timeout=10_000)
    page.select_option("#report-kind", "check")
    page.select_option("#report-target", "stm32f412")
    page.click("#models button[type=submit]")
    report = page.frame_locator("#report-frame")
    expect(report.locator("h1")).to_contain_text("check on stm32f412", timeout=120_000)
    expect(report.locator("svg rect").first).to_be_attached()  # the report's charts
    screenshot(page, "model-report")
    assert page.console.errors == []


def test_exit_works_with_the_token_and_is_refused_without_it(browser, base_url, dash_server):
    with dash_server.client(timeout=60) as c:
        assert c.request("sys", "auth", data=TOKEN)["error"]["code"] == 0
        echo = c.setup("echo", {"response_format": "echo.utf-8"})
        # a page without the token asks for it, and reads nothing until it has it
        context = browser.new_context(base_url=base_url)
        page = context.new_page()
        page.goto("/")
        expect(page.locator("#token-dialog")).to_be_visible()
        status = page.evaluate(
            """async (w) => (await fetch(`/dashboard/api/tasks/${w}/exit`,
            {method: 'POST', headers: {'X-Emberflow-Dashboard': '1'}})).status""",
            echo,
        )
        assert status == 401
        # a wrong token is refused too, and the page asks again
        page.fill("#token-input", "not-the-token")
        page.click("#token-dialog button[type=submit]")
        expect(page.locator("#token-dialog")).to_be_visible(timeout=10_000)
        expect(page.locator("#token-dialog")).to_contain_text("refused")
        # with the token: the page streams, and its exit button ends the StackFlow client's task
        page.fill("#token-input", TOKEN)
        page.click("#token-dialog button[type=submit]")
        expect(page.locator("#live")).to_have_text("live", timeout=30_000)
        # even with the token, a request without the page's header is not an action
        status = page.evaluate(
            """async ([w, t]) => (await fetch(`/dashboard/api/tasks/${w}/exit`,
            {method: 'POST', headers: {Authorization: 'Bearer ' + t}})).status""",
            [echo, TOKEN],
        )
        assert status == 403
        expect(task_row(page, echo)).to_be_visible(timeout=10_000)
        page.on("dialog", lambda d: d.accept())
        task_row(page, echo).locator("button.exit").click()
        expect(task_row(page, echo)).to_have_count(0, timeout=10_000)
        with pytest.raises(ServerError, match="-6"):  # gone for its client too
            c.request(echo, "taskinfo")
        context.close()
