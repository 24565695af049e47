"""KServe v2 gRPC with `tritonclient[grpc]`: readiness, metadata, infer equal to the Engine, API key."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as tg
from tritonclient.utils import InferenceServerException

from serving.repo_models import DIGITS, add_model, digits_inputs
from support import Server

API_KEY = "sk-grpc"


@pytest.fixture(scope="module")
def grpc_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grpc")
    add_model(tmp / "models", "digits", 1, DIGITS, "max_batch_size: 16\nmax_queue_delay_ms: 2\n")
    s = Server(tmp, config={"model_repository": str(tmp / "models"), "token": API_KEY})
    assert s.grpc_port, "no 'emberflow: grpc on' line:\n" + "".join(s.log)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(grpc_server):
    return tg.InferenceServerClient(f"127.0.0.1:{grpc_server.grpc_port}")


AUTH = {"authorization": f"Bearer {API_KEY}"}


def test_readiness_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("digits", headers=AUTH)
    assert not client.is_model_ready("nope", headers=AUTH)
    assert client.get_server_metadata(headers=AUTH).name == "emberflow"
    meta = client.get_model_metadata("digits", headers=AUTH)
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("image", "FP32", [-1, 1, 8, 8])]
    assert [(t.name, list(t.shape)) for t in meta.outputs] == [("logits", [-1, 10])]


def test_infer_equals_the_engine(client):
    from emberflow.runtime import Engine

    x = digits_inputs(7)
    inp = tg.InferInput("image", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    r = client.infer("digits", [inp], outputs=[tg.InferRequestedOutput("logits")], request_id="7", headers=AUTH)
    np.testing.assert_allclose(r.as_numpy("logits"), Engine(DIGITS)([x])[0], rtol=1e-5, atol=1e-6)
    assert r.get_response().id == "7" and r.get_response().model_version == "1"


def test_errors_have_grpc_status_codes(client):
    inp = tg.InferInput("image", [1, 3], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 3), np.float32))
    with pytest.raises(InferenceServerException) as e:
        client.infer("digits", [inp], headers=AUTH)
    assert e.value.status() == "StatusCode.INVALID_ARGUMENT"
    with pytest.raises(InferenceServerException) as e:
        client.get_model_metadata("digits")  # no key
    assert e.value.status() == "StatusCode.UNAUTHENTICATED"
    with pytest.raises(InferenceServerException) as e:
        client.get_model_metadata("nope", headers=AUTH)
    assert e.value.status() == "StatusCode.NOT_FOUND"


def test_repository_over_grpc(client):
    index = client.get_model_repository_index(headers=AUTH)
    assert [(m.name, m.version, m.state) for m in index.models] == [("digits", "1", "READY")]
    client.unload_model("digits", headers=AUTH)
    assert not client.is_model_ready("digits", headers=AUTH)
    client.load_model("digits", headers=AUTH)
    assert client.is_model_ready("digits", headers=AUTH)
    with pytest.raises(InferenceServerException) as e:
        client.load_model("nope", headers=AUTH)
    assert e.value.status() == "StatusCode.NOT_FOUND"


def test_messages_match_tritonclient_field_numbers():
    """Our field table against the proto tritonclient was generated from: same names, numbers, types."""
    from tritonclient.grpc import service_pb2

    from emberflow.serving.kserve_proto import messages

    for path, cls in messages.items():
        theirs = service_pb2
        for part in path.split("."):
            theirs = getattr(theirs, part)

        def shape(d):
            return {(f.name, f.number, f.type, f.message_type.name if f.message_type else None) for f in d.fields}

        ours_fields, their_fields = shape(cls.DESCRIPTOR), shape(theirs.DESCRIPTOR)
        assert ours_fields <= their_fields, path
