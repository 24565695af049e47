"""The dashboard in a real Chromium: it renders with no console errors, shows the preloaded LLM
ready, follows tasks a StackFlow client sets up and ends, chats, survives a unit crash without
a reload, and weighs what it should."""

from __future__ import annotations

import os
import signal

import pytest
from playwright.sync_api import expect

from dashboard.conftest import TOKEN, screenshot

pytestmark = pytest.mark.slow

PAGE_BUDGET = 700 * 1024  # bytes, every response of the first load together


def open_dashboard(page):
    page.goto("/")
    expect(page.locator("#live")).to_have_text("live", timeout=30_000)


def unit_row(page, kind):
    return page.locator(f'#units tr[data-kind="{kind}"]')


def task_row(page, work_id):
    return page.locator(f'#units tr[data-work-id="{work_id}"]')


def test_page_renders_the_preloaded_llm_ready_without_console_errors(page, dash_server):
    responses = []
    page.on("response", lambda r: responses.append(r))
    open_dashboard(page)
    expect(unit_row(page, "llm").locator(".state")).to_have_text("ready", timeout=120_000)
    expect(page.locator('#units tr[data-work-id^="llm."] .state')).to_have_text(["ready"], timeout=60_000)
    expect(page.locator("#metrics .uplot")).to_have_count(4, timeout=10_000)  # the four charts are drawn
    screenshot(page, "overview")
    assert page.console.errors == []
    # page weight: every response of the first load, nothing from another origin
    first_load = [r for r in responses if "/dashboard/api/" not in r.url]
    assert all(r.url.startswith(page.url.rstrip("/")) for r in first_load), [r.url for r in first_load]
    weight = sum(len(r.body()) for r in first_load)
    assert 0 < weight <= PAGE_BUDGET, f"the page weighs {weight} bytes"


def test_tasks_appear_and_disappear_as_a_stackflow_client_drives_them(page, dash_server):
    open_dashboard(page)
    with dash_server.client(timeout=60) as c:
        assert c.request("sys", "auth", data=TOKEN)["error"]["code"] == 0
        echo = c.setup("echo", {"response_format": "echo.utf-8.stream"})
        tally = c.setup("tally", {"input": [echo]})
        expect(task_row(page, echo)).to_be_visible(timeout=10_000)
        expect(task_row(page, tally)).to_be_visible()
        expect(page.locator("#graph")).to_have_attribute("data-edges", "1")  # echo -> tally
        for i in range(3):
            list(c.stream(echo, f"hello {i}"))
        expect(task_row(page, echo).locator("td").nth(6)).to_have_text("3")  # inferences
        screenshot(page, "tasks-and-graph")
        c.exit(tally)
        expect(task_row(page, tally)).to_have_count(0, timeout=10_000)
        expect(page.locator("#events li", has_text=f"{tally} ended")).to_have_count(1)
        c.exit(echo)
        expect(task_row(page, echo)).to_have_count(0, timeout=10_000)
    assert page.console.errors == []


def test_chat_streams_the_answer_over_the_openai_route(page, dash_server):
    open_dashboard(page)
    expect(page.locator("#chat-model")).to_have_value("smollm2-135m-instruct", timeout=10_000)
    page.fill("#chat-input", "What is the capital of France?")
    page.click("#chat button[type=submit]")
    expect(page.locator("#messages")).to_have_attribute("data-answers", "1", timeout=120_000)
    expect(page.locator("#messages p.assistant")).to_contain_text("Paris")
    screenshot(page, "chat")
    assert page.console.errors == []


def test_a_killed_llm_process_shows_crashed_then_ready_without_a_reload(page, dash_server):
    open_dashboard(page)
    row = unit_row(page, "llm")
    expect(row.locator(".state")).to_have_text("ready", timeout=120_000)
    restarts = int(row.locator(".restarts").inner_text())
    old_pid = row.locator("td").nth(2).inner_text()
    os.kill(dash_server.unit_pid("llm"), signal.SIGKILL)
    # the loss is pushed as it happens (not at the next snapshot) and kept in the event log
    expect(page.locator("#events li", has_text="llm unit lost (crashed)")).to_have_count(1, timeout=10_000)
    expect(row.locator(".restarts")).to_have_text(str(restarts + 1))
    expect(row.locator(".state")).to_have_text("ready", timeout=120_000)
    expect(row.locator("td").nth(2)).not_to_have_text(old_pid)
    expect(page.locator('#units tr[data-work-id^="llm."] .state')).to_have_text(["ready"], timeout=60_000)
    assert page.evaluate("window.__dashboardLoads") == 1  # the same page all along
    screenshot(page, "after-crash")
    assert page.console.errors == []
