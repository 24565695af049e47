"""`emberflow create` makes a project that passes its own test, runs locally with schema checks,
and serves over HTTP and StackFlow TCP with `emberflow serve`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest
import requests

EMBERFLOW = [sys.executable, "-m", "emberflow"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    parent = tmp_path_factory.mktemp("scaffold")
    out = subprocess.run(
        [*EMBERFLOW, "create", "-n", "demo_unit", "-p", str(parent)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return parent / "demo_unit"


def test_layout_and_bad_names(project, tmp_path):
    for rel in (
        "wrapper.py",
        "README.md",
        "emberflow.yaml",
        "tests/test_wrapper.py",
        "sample/params.json",
        "sample/request.json",
        "sample/sample.png",
        "sample/sample.wav",
    ):
        assert (project / rel).is_file(), rel
    bad = subprocess.run([*EMBERFLOW, "create", "-n", "Bad-Name", "-p", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2 and "lower-case" in bad.stderr


def test_the_project_passes_its_own_test(project):
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "5 passed" in out.stdout


def test_run_local_validates_against_the_declared_result(project):
    ok = subprocess.run([*EMBERFLOW, "run-local", str(project)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["outputs"][0]["count"] == 9 and "valid against" in ok.stderr
    # break the unit's contract: the result no longer matches its declared Result model
    broken = project.parent / "broken"
    import shutil

    shutil.copytree(project, broken)
    src = (broken / "wrapper.py").read_text()
    src = src.replace("Result(greeting=self.p.greeting, count=count,", "dict(greeting=self.p.greeting, count=-1,")
    src = src.replace("**extras).model_dump()", "**extras)")
    (broken / "wrapper.py").write_text(src)
    bad = subprocess.run([*EMBERFLOW, "run-local", str(broken)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "INVALID" in bad.stderr and "count" in bad.stderr


def test_serve_over_http_and_stackflow_tcp(project):
    proc = subprocess.Popen(
        [*EMBERFLOW, "serve", str(project), "--port", "0", "--http-port", "0", "--grpc-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        cwd=project.parent,
        env=dict(os.environ, EMBERFLOW_LOG="WARNING"),
    )
    ports: dict[str, int] = {}
    ready = threading.Event()

    def pump() -> None:
        for line in proc.stdout:
            for key in ("http", "listening"):
                if line.startswith(f"emberflow: {key} on "):
                    ports[key] = int(line.rsplit(":", 1)[1])
            if "listening" in ports:
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        assert ready.wait(30), "emberflow serve did not start"
        r = requests.post(
            f"http://127.0.0.1:{ports['http']}/units/demo_unit/infer",
            timeout=30,
            json={"params": {"greeting": "hi"}, "data": {"text": "Hello there. How are you?"}},
        )
        assert r.status_code == 200 and r.json()["outputs"][0]["count"] == 5
        from emberflow.client import Client

        with Client("127.0.0.1", ports["listening"]) as c:  # the same unit over StackFlow JSON on TCP
            work_id = c.setup("demo_unit", {"greeting": "hey", "response_format": "demo_unit.json.stream"})
            rid = c.infer(work_id, {"text": "One two. Three."}, object="demo_unit.json")
            deltas = [m["data"]["delta"] for m in c.outputs(work_id, rid, timeout=30)]
        assert [d["count"] for d in deltas if d] == [2, 1] and deltas[-1] == ""
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
