"""Issue 15 item 17 (KServe): malformed tensors used to be HTTP 500 (an unhandled exception); they
are 400 / INVALID_ARGUMENT with the reason: a value the datatype cannot hold (INT8 1000),
`parameters` that are not objects, a lone UTF-16 surrogate in the JSON."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import grpc
import pytest

from hardening.kserve_client import grpc_infer, image, infer


def test_an_int8_value_out_of_range_is_400(kserve):
    status, answer = infer(kserve, {"inputs": [{"name": "image", "shape": [1], "datatype": "INT8", "data": [1000]}]})
    assert status == 400 and "INT8" in answer["error"]


def test_parameters_that_are_not_objects_are_400(kserve):
    status, answer = infer(kserve, {"inputs": [image()], "outputs": [{"name": "logits", "parameters": [1]}]})
    assert status == 400 and "outputs[0].parameters" in answer["error"]
    status, answer = infer(kserve, {"inputs": [image(parameters=["binary_data_size", 4])]})
    assert status == 400 and "inputs[0].parameters" in answer["error"]
    status, answer = infer(kserve, {"inputs": [image()], "parameters": [1]})
    assert status == 400


def test_a_lone_surrogate_in_the_request_is_400(kserve):
    status, answer = infer(
        kserve, b'{"id": "\\udfff", "inputs": [{"name": "\\ud800", "shape": [1], "datatype": "FP32", "data": [1]}]}'
    )
    assert status == 400 and "surrogate" in answer["error"]
    raw = (
        b'{"id":"\\ud800","inputs":[{"name":"image","shape":[1],"datatype":"FP32","parameters":'
        b'{"binary_data_size":4}}]}'
    )
    req = urllib.request.Request(
        f"http://127.0.0.1:{kserve.http_port}/v2/models/digits/infer",
        data=raw + b"\0\0\0\0",
        headers={"Inference-Header-Content-Length": str(len(raw))},
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=60)
    assert e.value.code == 400 and "surrogate" in json.loads(e.value.read())["error"]


def test_the_grpc_int8_value_out_of_range_is_invalid_argument(kserve):
    from emberflow.serving.kserve_proto import messages

    req = messages["ModelInferRequest"](model_name="digits")
    t = req.inputs.add(name="image", datatype="INT8", shape=[1])
    t.contents.int_contents.append(1000)
    with pytest.raises(grpc.RpcError) as e:
        grpc_infer(kserve, req)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "INT8" in e.value.details()
