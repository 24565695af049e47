"""Issue 15 item 8: a client number that becomes a timer must be a finite number above 0. KServe's
`parameters.timeout` NaN reached asyncio.wait_for and corrupted the event loop's timer heap, which
every protocol shares; it is 400 (REST) / INVALID_ARGUMENT (gRPC) now."""

from __future__ import annotations

import json

import grpc
import pytest

from hardening.kserve_client import grpc_infer, image, infer
from serving.repo_models import digits_inputs


@pytest.mark.parametrize("timeout", ["NaN", "Infinity", "-Infinity", "0", "-5", '"soon"', "true", "1e400", "9" * 400])
def test_a_timeout_that_is_not_a_finite_positive_number_is_400(kserve, timeout):
    body = json.dumps({"inputs": [image()], "parameters": {"timeout": "@"}}).replace('"@"', timeout)
    status, answer = infer(kserve, body.encode())
    assert status == 400 and "timeout" in answer["error"]


def test_a_valid_timeout_still_works(kserve):
    status, answer = infer(kserve, {"inputs": [image()], "parameters": {"timeout": 30_000_000}})
    assert status == 200 and answer["outputs"][0]["name"] == "logits"


@pytest.mark.parametrize(
    "field,value", [("int64_param", -1), ("int64_param", 0), ("double_param", float("nan")), ("string_param", "5")]
)
def test_a_grpc_timeout_that_is_not_a_finite_positive_number_is_invalid_argument(kserve, field, value):
    from emberflow.serving.kserve_proto import messages

    x = digits_inputs(1)
    req = messages["ModelInferRequest"](model_name="digits")
    req.inputs.add(name="image", datatype="FP32", shape=list(x.shape))
    req.raw_input_contents.append(x.astype("<f4").tobytes())
    setattr(req.parameters["timeout"], field, value)
    with pytest.raises(grpc.RpcError) as e:
        grpc_infer(kserve, req)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "timeout" in e.value.details()
