"""What the dashboard shows, from the router's state (pure functions: no server, no browser)."""

from __future__ import annotations

from emberflow.serving.dashboard import graph_view, units_view
from emberflow.serving.dashboard.metrics_view import Series, quantile
from emberflow.serving.dashboard.units_view import Inputs, ProcessUse, UnitHistory
from emberflow.serving.dashboard.voice import Exchanges
from emberflow.sys.tasks import LossReason, TaskRecord


def record(work_id: str, inputs: list[str] | None = None, params: dict | None = None) -> TaskRecord:
    return TaskRecord(
        work_id, work_id.split(".")[0], "token", 8001, f"ipc://{work_id}", None, params or {}, inputs=inputs or []
    )


def test_a_crashed_unit_stays_crashed_until_a_new_process_is_ready():
    history = UnitHistory(restarts=1, lost=LossReason.CRASHED)
    assert units_view.unit_state({"state": "restarting"}, history) == "crashed"
    assert units_view.unit_state({"state": "starting"}, history) == "crashed"
    assert units_view.unit_state({"state": "ready"}, history) == "ready"
    assert units_view.unit_state({"state": "starting"}, UnitHistory(lost=LossReason.RESET)) == "starting"


def test_task_rows_carry_queue_drops_and_process_use():
    rec = record("llm.1000")
    rec.waiting[(8001, "r1")] = 0.0
    inp = Inputs(
        [rec],
        [{"kind": "llm", "pid": 42, "state": "ready"}],
        {
            "llm.1000": {
                "queue": {"depth": 2, "high_water": 5, "dropped": {"camera.1": 3}, "flushed": 1},
                "stats": {"inferences": 7},
                "resolved_model": "smollm2",
            }
        },
        {42: ProcessUse(rss=1000, cpu=12.5)},
        {"llm": UnitHistory(restarts=2)},
        pending={"llm": [("setup-1", "llm.1001")]},
    )
    (row, starting) = units_view.tasks_rows(inp)
    assert row["state"] == "busy" and row["model"] == "smollm2" and row["depth"] == 2 and row["drops"] == 4
    assert (row["inferences"], row["rss"], row["cpu"], row["restarts"]) == (7, 1000, 12.5, 2)
    assert starting["work_id"] == "llm.1001" and starting["state"] == "starting"


def test_graph_edges_name_policy_drops_and_light_up_when_frames_pass():
    audio = record("audio")
    asr = record("asr.1000", ["sys.pcm"], {"input_policy": {"sys.pcm": "lossless"}})
    llm = record("llm.1001", ["asr.1000", "llm.utf-8.stream"], {"input_policy": {"asr.1000": "latest"}})
    infos = {
        "audio": {"unit": {"captured_frames": 10}, "stats": {"outputs": 0}},
        "asr.1000": {"stats": {"outputs": 4}},
        "llm.1001": {"queue": {"dropped": {"asr.1000": 2}}, "stats": {}},
    }
    g = graph_view.graph([audio, asr, llm], infos, {"audio": 10, "asr.1000": 3}, {})
    edges = {e["id"]: e for e in g["edges"]}
    assert set(edges) == {"audio->asr.1000", "asr.1000->llm.1001"}  # its own inference channel is no link
    assert edges["asr.1000->llm.1001"] == {
        "id": "asr.1000->llm.1001",
        "source": "asr.1000",
        "target": "llm.1001",
        "policy": "latest",
        "drops": 2,
        "lit": True,
    }
    assert edges["audio->asr.1000"]["lit"] is False  # no frame since the last snapshot


def test_latency_quantiles_come_from_the_buckets_that_grew():
    assert quantile(0.5, {0.1: 5, 0.2: 10, float("inf"): 10}) == 0.1
    assert quantile(0.99, {0.1: 0, 1.0: 100, float("inf"): 100}) == 0.991
    assert quantile(0.5, {0.1: 0, float("inf"): 0}) is None
    text = (
        'emberflow_requests_total{{protocol="openai",route="/v1/chat/completions",status="200"}} {n}\n'
        'emberflow_requests_total{{protocol="http",route="/dashboard/api/stream",status="200"}} 99\n'
        'emberflow_llm_completion_tokens_total{{model="m"}} {t}\n'
    )
    series = Series()
    assert series.sample(text.format(n=1, t=0), at=0.0) is None
    point = series.sample(text.format(n=11, t=50), at=2.0)
    assert (
        point is not None and point["rps"] == 5.0 and point["tokens_s"] == 25.0
    )  # the dashboard's own requests left out


def test_transcripts_pair_with_the_audio_units_latency_turns():
    published = []
    ex = Exchanges(lambda name, data: published.append(data["type"]))
    ex.on_output(
        {
            "work_id": "asr.1",
            "object": "asr.utf-8.stream",
            "data": {"delta": "Capital?", "finish": True},
            "error": {"code": 0},
        }
    )
    ex.on_output(
        {
            "work_id": "llm.2",
            "object": "llm.utf-8.stream",
            "data": {"delta": "Paris", "finish": False},
            "error": {"code": 0},
        }
    )
    ex.on_output(
        {"work_id": "llm.2", "object": "llm.utf-8.stream", "data": {"delta": ".", "finish": True}, "error": {"code": 0}}
    )
    turn = {"end_to_end": 1.0, "asr": 0.2}
    ex.on_turns([turn])
    ex.on_turns([turn])  # the same turn seen again is not a new one
    (only,) = ex.public()
    assert (only["heard"], only["answer"], only["done"], only["turn"]) == ("Capital?", "Paris.", True, turn)
    assert published == ["heard", "answer", "answer", "answered"]
