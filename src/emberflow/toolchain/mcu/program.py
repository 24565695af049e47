"""From a `.tflite` model to a program: kernel calls in order, where every tensor lives, and sizes.

Tensors live in one of three places: the activation arena (planned by the existing memory
planner, so its size is the planner's result and reshapes share their input's buffer),
the streaming state (resource variables of models like microWakeWord, kept between runs and
initialised from the CALL_ONCE init subgraph), or flash (constants).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emberflow.toolchain.graph import Graph, Node, TensorInfo
from emberflow.toolchain.mcu.lower import (
    ALIAS_OPS,
    CompileError,
    ConstArray,
    Layer,
    Lowering,
)
from emberflow.toolchain.mcu.tflite_model import Op, Subgraph, Tensor, TfliteModel
from emberflow.toolchain.memplan import MemoryPlan, plan_memory

ALIGN = 16


@dataclass
class Variable:
    name: str
    offset: int  # in the state buffer
    nbytes: int
    init: np.ndarray  # bytes copied in at create and reset


@dataclass
class Program:
    name: str
    model: TfliteModel
    layers: list[Layer]
    storage: dict[int, tuple[str, int]]  # tensor -> ("arena" | "state" | "const", offset or -1)
    plan: MemoryPlan
    variables: list[Variable] = field(default_factory=list)
    scratch_offsets: dict[int, int] = field(default_factory=dict)  # layer position -> arena offset
    const_tensors: list[ConstArray] = field(default_factory=list)

    @property
    def sg(self) -> Subgraph:
        return self.model.main

    @property
    def arena_bytes(self) -> int:
        return self.plan.arena_bytes

    @property
    def state_bytes(self) -> int:
        return max((v.offset + v.nbytes for v in self.variables), default=0)

    @property
    def macc(self) -> int:
        return sum(layer.macc for layer in self.layers)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _handle_key(op: Op) -> str:
    """A resource variable's identity: VAR_HANDLE's container and shared name."""
    return f"{op.str_opt('container')}/{op.str_opt('sharedName')}"


def _variables(model: TfliteModel, op: Op | None) -> dict[str, np.ndarray]:
    """Initial values of the resource variables, from the CALL_ONCE init subgraph."""
    if op is None:
        return {}
    index = op.int_opt("initSubgraphIndex", -1)
    if not 0 < index < len(model.subgraphs):
        raise CompileError(f"CALL_ONCE {op.name}: init subgraph {index} does not exist")
    init = model.subgraphs[index]
    handles: dict[int, str] = {}
    values: dict[str, np.ndarray] = {}
    for iop in init.ops:
        if iop.op_type == "VAR_HANDLE":
            handles[iop.outputs[0]] = _handle_key(iop)
        elif iop.op_type == "ASSIGN_VARIABLE":
            value = init.tensors[iop.inputs[1]]
            if value.data is None:
                raise CompileError(
                    f"CALL_ONCE {op.name}: init subgraph assigns a computed value; only constants are supported"
                )
            values[handles[iop.inputs[0]]] = value.data
        else:
            raise CompileError(
                f"CALL_ONCE {op.name}: init subgraph runs {iop.op_type}; only VAR_HANDLE and "
                "ASSIGN_VARIABLE of constants are supported"
            )
    return values


def build_program(model: TfliteModel, name: str) -> Program:
    sg = model.main
    call_once = next((op for op in sg.ops if op.op_type == "CALL_ONCE"), None)
    inits = _variables(model, call_once)
    handle_of: dict[int, str] = {}
    variables: dict[str, Variable] = {}
    state_end = 0

    def variable(key: str, like: Tensor) -> Variable:
        nonlocal state_end
        if key not in variables:
            init = inits.get(key)
            data = init.astype(like.dtype).tobytes() if init is not None else bytes(like.nbytes)
            if len(data) != like.nbytes:
                raise CompileError(f"variable {key}: initial value has {len(data)} bytes, the graph uses {like.nbytes}")
            variables[key] = Variable(key, state_end, like.nbytes, np.frombuffer(data, np.uint8))
            state_end = _align(state_end + like.nbytes)
        return variables[key]

    lowering = Lowering(sg, f"ai_{name}")
    storage: dict[int, tuple[str, int]] = {}
    layers: list[Layer] = []
    alias_nodes: list[tuple[int, Op]] = []  # (position among layers, op) for the planner
    # the last op index reading each tensor, to know whether a variable read can alias the state
    last_read: dict[int, int] = {}
    for op in sg.ops:
        for i in op.inputs:
            last_read[i] = op.index
    first_assign: dict[str, int] = {}
    for op in sg.ops:
        if op.op_type == "VAR_HANDLE":
            handle_of[op.outputs[0]] = _handle_key(op)
    for op in sg.ops:
        if op.op_type == "ASSIGN_VARIABLE":
            first_assign.setdefault(handle_of.get(op.inputs[0], "?"), op.index)

    for op in sg.ops:
        if op.op_type in ("CALL_ONCE", "VAR_HANDLE"):
            continue
        if op.op_type in ("READ_VARIABLE", "ASSIGN_VARIABLE"):
            key = handle_of.get(op.inputs[0])
            if key is None:
                raise CompileError(f"{op.op_type} {op.name}: its resource does not come from a VAR_HANDLE")
            reads = op.op_type == "READ_VARIABLE"
            t = sg.tensors[op.outputs[0] if reads else op.inputs[1]]
            var = variable(key, t)
            if reads and last_read.get(t.index, -1) < first_assign.get(key, 1 << 30):
                # read before any write: the tensor is the state itself, no copy
                storage[t.index] = ("state", var.offset)
            elif reads:
                copy = f"ef_memcpy({{t{t.index}}}, S + {var.offset}, {var.nbytes});"
                layers.append(Layer(op, [copy], writes=[t.index]))
            else:
                copy = f"ef_memcpy(S + {var.offset}, {{t{t.index}}}, {var.nbytes});"
                layers.append(Layer(op, [copy], reads=[t.index]))
            continue
        if op.op_type in ALIAS_OPS:
            src, dst = sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]
            if src.nbytes != dst.nbytes:
                raise CompileError(f"{op.op_type} {op.name}: input and output sizes differ")
            if src.index in storage:  # state or flash: the view lives there too
                storage[dst.index] = storage[src.index]
            elif src.is_const:
                storage[dst.index] = ("const", src.index)
            else:
                alias_nodes.append((len(layers), op))
            continue
        layers.append(lowering.lower(op))

    const_tensors = []
    for layer in layers:
        for i in layer.reads:
            t = sg.tensors[i]
            if t.data is not None and i not in storage:
                storage[i] = ("const", i)
                raw = np.frombuffer(t.data.tobytes(), np.uint8)
                const_tensors.append(ConstArray(f"ai_{name}_c{i}", "uint8_t", raw))
    plan, scratch = _plan(sg, layers, alias_nodes, storage)
    for buf in plan.buffers:
        for tname in buf.tensors:
            if tname.startswith("t"):
                storage[int(tname[1:])] = ("arena", buf.offset)
    program = Program(
        name,
        model,
        layers,
        storage,
        plan,
        sorted(variables.values(), key=lambda v: v.offset),
        scratch,
        const_tensors,
    )
    for i in list(sg.inputs) + list(sg.outputs):
        if storage.get(i, ("", 0))[0] != "arena":
            raise CompileError(f"graph input/output {sg.tensors[i].name} is not an activation; cannot compile")
    return program


def _plan(
    sg: Subgraph,
    layers: list[Layer],
    alias_nodes: list[tuple[int, Op]],
    storage: dict[int, tuple[str, int]],
) -> tuple[MemoryPlan, dict[int, int]]:
    """Arena offsets from the shared planner: one node per layer (plus the reshape aliases),
    each layer's scratch a tensor alive during that layer only."""
    tensors: dict[str, TensorInfo] = {}
    nodes: list[Node] = []

    def info(i: int) -> str:
        key = f"t{i}"
        if key not in tensors:
            t = sg.tensors[i]
            outside = i in storage or t.is_const or t.itemsize == 0
            tensors[key] = TensorInfo(key, t.shape, t.dtype if t.itemsize else "resource", is_const=outside)
        return key

    aliases = iter(alias_nodes)
    pending = next(aliases, None)
    for pos in range(len(layers) + 1):
        # the reshape aliases before this layer (or after the last one)
        while pending is not None and pending[0] == pos:
            op = pending[1]
            nodes.append(Node(op.name, op.op_type, [info(op.inputs[0])], [info(op.outputs[0])]))
            pending = next(aliases, None)
        if pos == len(layers):
            break
        layer = layers[pos]
        outs = [info(i) for i in layer.writes]
        if layer.scratch:
            key = f"scratch{pos}"
            tensors[key] = TensorInfo(key, (layer.scratch,), "int8")
            outs.append(key)
        nodes.append(Node(layer.op.name, layer.op.op_type, [info(i) for i in layer.reads], outs))
    graph = Graph(
        name="program",
        format="tflite",
        nodes=nodes,
        tensors=tensors,
        inputs=[info(i) for i in sg.inputs],
        outputs=[info(i) for i in sg.outputs],
    )
    plan = plan_memory(graph, alignment=ALIGN)
    scratch = {}
    for buf in plan.buffers:
        for tname in buf.tensors:
            if tname.startswith("scratch"):
                scratch[int(tname[len("scratch") :])] = buf.offset
    return plan, scratch
