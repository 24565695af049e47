"""The KServe v2 gRPC messages (`package inference`), declared as a table and built at import.

Field names and numbers follow the Open Inference Protocol's `open_inference_grpc.proto` (and
Triton's `grpc_service.proto`, which shares them), so tritonclient and kserve clients interoperate.
Building the descriptors here instead of committing protoc output avoids protoc's gencode/runtime
version checks: the same code works with protobuf 4 to 7, and no code generator is needed at
build time.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "inference"
SERVICE = "inference.GRPCInferenceService"

_T = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "bool": _T.TYPE_BOOL,
    "int32": _T.TYPE_INT32,
    "int64": _T.TYPE_INT64,
    "uint32": _T.TYPE_UINT32,
    "uint64": _T.TYPE_UINT64,
    "float": _T.TYPE_FLOAT,
    "double": _T.TYPE_DOUBLE,
    "string": _T.TYPE_STRING,
    "bytes": _T.TYPE_BYTES,
}

# message -> [(field, number, type, "repeated"|"map"|"oneof:<name>"|"")]; nested messages use "Outer.Inner".
PARAMS = ("parameters", 4, "map<InferParameter>", "")
MESSAGES: dict[str, list[tuple]] = {
    "ServerLiveRequest": [],
    "ServerLiveResponse": [("live", 1, "bool", "")],
    "ServerReadyRequest": [],
    "ServerReadyResponse": [("ready", 1, "bool", "")],
    "ModelReadyRequest": [("name", 1, "string", ""), ("version", 2, "string", "")],
    "ModelReadyResponse": [("ready", 1, "bool", "")],
    "ServerMetadataRequest": [],
    "ServerMetadataResponse": [
        ("name", 1, "string", ""),
        ("version", 2, "string", ""),
        ("extensions", 3, "string", "repeated"),
    ],
    "ModelMetadataRequest": [("name", 1, "string", ""), ("version", 2, "string", "")],
    "ModelMetadataResponse.TensorMetadata": [
        ("name", 1, "string", ""),
        ("datatype", 2, "string", ""),
        ("shape", 3, "int64", "repeated"),
    ],
    "ModelMetadataResponse": [
        ("name", 1, "string", ""),
        ("versions", 2, "string", "repeated"),
        ("platform", 3, "string", ""),
        ("inputs", 4, "ModelMetadataResponse.TensorMetadata", "repeated"),
        ("outputs", 5, "ModelMetadataResponse.TensorMetadata", "repeated"),
    ],
    "InferParameter": [
        ("bool_param", 1, "bool", "oneof:parameter_choice"),
        ("int64_param", 2, "int64", "oneof:parameter_choice"),
        ("string_param", 3, "string", "oneof:parameter_choice"),
        ("double_param", 4, "double", "oneof:parameter_choice"),
        ("uint64_param", 5, "uint64", "oneof:parameter_choice"),
    ],
    "InferTensorContents": [
        ("bool_contents", 1, "bool", "repeated"),
        ("int_contents", 2, "int32", "repeated"),
        ("int64_contents", 3, "int64", "repeated"),
        ("uint_contents", 4, "uint32", "repeated"),
        ("uint64_contents", 5, "uint64", "repeated"),
        ("fp32_contents", 6, "float", "repeated"),
        ("fp64_contents", 7, "double", "repeated"),
        ("bytes_contents", 8, "bytes", "repeated"),
    ],
    "ModelInferRequest.InferInputTensor": [
        ("name", 1, "string", ""),
        ("datatype", 2, "string", ""),
        ("shape", 3, "int64", "repeated"),
        PARAMS,
        ("contents", 5, "InferTensorContents", ""),
    ],
    "ModelInferRequest.InferRequestedOutputTensor": [
        ("name", 1, "string", ""),
        ("parameters", 2, "map<InferParameter>", ""),
    ],
    "ModelInferRequest": [
        ("model_name", 1, "string", ""),
        ("model_version", 2, "string", ""),
        ("id", 3, "string", ""),
        PARAMS,
        ("inputs", 5, "ModelInferRequest.InferInputTensor", "repeated"),
        ("outputs", 6, "ModelInferRequest.InferRequestedOutputTensor", "repeated"),
        ("raw_input_contents", 7, "bytes", "repeated"),
    ],
    "ModelInferResponse.InferOutputTensor": [
        ("name", 1, "string", ""),
        ("datatype", 2, "string", ""),
        ("shape", 3, "int64", "repeated"),
        PARAMS,
        ("contents", 5, "InferTensorContents", ""),
    ],
    "ModelInferResponse": [
        ("model_name", 1, "string", ""),
        ("model_version", 2, "string", ""),
        ("id", 3, "string", ""),
        PARAMS,
        ("outputs", 5, "ModelInferResponse.InferOutputTensor", "repeated"),
        ("raw_output_contents", 6, "bytes", "repeated"),
    ],
    # Triton's model-repository extension (tritonclient's load_model / unload_model / repository index)
    "ModelRepositoryParameter": [
        ("bool_param", 1, "bool", "oneof:parameter_choice"),
        ("int64_param", 2, "int64", "oneof:parameter_choice"),
        ("string_param", 3, "string", "oneof:parameter_choice"),
        ("bytes_param", 4, "bytes", "oneof:parameter_choice"),
    ],
    "RepositoryIndexRequest": [("repository_name", 1, "string", ""), ("ready", 2, "bool", "")],
    "RepositoryIndexResponse.ModelIndex": [
        ("name", 1, "string", ""),
        ("version", 2, "string", ""),
        ("state", 3, "string", ""),
        ("reason", 4, "string", ""),
    ],
    "RepositoryIndexResponse": [("models", 1, "RepositoryIndexResponse.ModelIndex", "repeated")],
    "RepositoryModelLoadRequest": [
        ("repository_name", 1, "string", ""),
        ("model_name", 2, "string", ""),
        ("parameters", 3, "map<ModelRepositoryParameter>", ""),
    ],
    "RepositoryModelLoadResponse": [],
    "RepositoryModelUnloadRequest": [
        ("repository_name", 1, "string", ""),
        ("model_name", 2, "string", ""),
        ("parameters", 3, "map<ModelRepositoryParameter>", ""),
    ],
    "RepositoryModelUnloadResponse": [],
}

# rpc -> (request, response)
RPCS = {
    "ServerLive": ("ServerLiveRequest", "ServerLiveResponse"),
    "ServerReady": ("ServerReadyRequest", "ServerReadyResponse"),
    "ModelReady": ("ModelReadyRequest", "ModelReadyResponse"),
    "ServerMetadata": ("ServerMetadataRequest", "ServerMetadataResponse"),
    "ModelMetadata": ("ModelMetadataRequest", "ModelMetadataResponse"),
    "ModelInfer": ("ModelInferRequest", "ModelInferResponse"),
    "RepositoryIndex": ("RepositoryIndexRequest", "RepositoryIndexResponse"),
    "RepositoryModelLoad": ("RepositoryModelLoadRequest", "RepositoryModelLoadResponse"),
    "RepositoryModelUnload": ("RepositoryModelUnloadRequest", "RepositoryModelUnloadResponse"),
}


def _build() -> dict[str, type]:
    fdp = descriptor_pb2.FileDescriptorProto(name="emberflow_inference.proto", package=PACKAGE, syntax="proto3")
    protos: dict[str, descriptor_pb2.DescriptorProto] = {}

    def proto_for(path: str) -> descriptor_pb2.DescriptorProto:
        if path in protos:
            return protos[path]
        outer, _, inner = path.rpartition(".")
        parent = proto_for(outer).nested_type if outer else fdp.message_type
        protos[path] = parent.add(name=inner)
        return protos[path]

    for path, fields in MESSAGES.items():
        msg = proto_for(path)
        oneofs: dict[str, int] = {}
        for name, number, type_, mode in fields:
            f = msg.field.add(name=name, number=number, json_name=_camel(name))
            if type_.startswith("map<"):
                value = type_[4:-1]
                entry = msg.nested_type.add(name=_camel(name, upper=True) + "Entry")
                entry.options.map_entry = True
                entry.field.add(name="key", number=1, type=_T.TYPE_STRING, label=_T.LABEL_OPTIONAL)
                entry.field.add(
                    name="value",
                    number=2,
                    type=_T.TYPE_MESSAGE,
                    label=_T.LABEL_OPTIONAL,
                    type_name=f".{PACKAGE}.{value}",
                )
                f.type, f.label, f.type_name = _T.TYPE_MESSAGE, _T.LABEL_REPEATED, f".{PACKAGE}.{path}.{entry.name}"
                continue
            f.label = _T.LABEL_REPEATED if mode == "repeated" else _T.LABEL_OPTIONAL
            if type_ in _SCALARS:
                f.type = _SCALARS[type_]
            else:
                f.type, f.type_name = _T.TYPE_MESSAGE, f".{PACKAGE}.{type_}"
            if mode.startswith("oneof:"):
                group = mode.split(":", 1)[1]
                if group not in oneofs:
                    oneofs[group] = len(msg.oneof_decl)
                    msg.oneof_decl.add(name=group)
                f.oneof_index = oneofs[group]
    service = fdp.service.add(name=SERVICE.rsplit(".", 1)[1])
    for rpc, (req, resp) in RPCS.items():
        service.method.add(name=rpc, input_type=f".{PACKAGE}.{req}", output_type=f".{PACKAGE}.{resp}")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {path: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{path}")) for path in MESSAGES}


def _camel(name: str, upper: bool = False) -> str:
    parts = name.split("_")
    head = parts[0].capitalize() if upper else parts[0]
    return head + "".join(p.capitalize() for p in parts[1:])


messages = _build()
