"""The layout shows the architecture: layers import downwards only, and no module imports itself
back through others. Every import counts, also those inside functions and `if TYPE_CHECKING:`."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "emberflow"

# Lowest first. A module may import its own layer and the layers below it, never above.
LAYERS: list[set[str]] = [
    {"__init__", "errors", "protocol", "bus", "runtime", "targets"},  # versions; wire formats, bus, engine
    {"unit", "models", "voice", "vision", "toolchain", "client"},  # the unit SDK; what units and tools share
    {"gateways", "sys"},  # the daemon: router, task table, policies, byte transports
    {"serving", "flows", "bridges"},  # HTTP protocols, flows, bridges: they reach units through the router only
    {"units", "cli", "chat", "testing", "__main__"},  # built-in units (plugins nothing imports), entry points
]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("emberflow")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("emberflow"):
                out.add(target)
                out |= {f"{target}.{a.name}" for a in node.names}  # `from pkg import module`
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: its package {top!r} is in no layer; add it to LAYERS")


def test_no_module_imports_a_layer_above_it():
    upward = sorted(
        f"{mod} (layer {_layer(mod)}) imports {dep} (layer {_layer(dep)})"
        for mod, deps in _graph().items()
        for dep in deps
        if _layer(dep) > _layer(mod)
    )
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    graph = _graph()
    # package __init__ modules are containers: `emberflow.unit` re-exporting `unit.base` is not a cycle
    edges = {m: {d for d in deps if not (m.startswith(d + ".") or d.startswith(m + "."))} for m, deps in graph.items()}
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(stack[stack.index(dep) :] + [dep]))
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert not cycles, "\n".join(cycles)
