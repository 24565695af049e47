"""Start a flow over the StackFlow protocol, like any client would: setups in dependency order,
each with its `input` list of upstream work_ids and an `input_policy` per link.

`setup_params` is the plan; `start` runs it over a TCP client (the demo), `start_local` over an
in-process connection (`emberflow up FLOW`, inside the daemon).
"""

from __future__ import annotations

from typing import Any

from emberflow.client import Client, ServerError
from emberflow.flows.spec import Flow, UnitSpec
from emberflow.gateways.local import LocalConnection


def setup_params(
    spec: UnitSpec, flow: Flow, work_ids: dict[str, str], overrides: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The setup data of one unit of the flow, once its upstream units have work ids."""
    params = {**spec.params, **(overrides or {}).get(spec.name, {})}  # enoutput: each unit's own default
    inputs, policies = [], {}
    for link in spec.inputs:
        upstream = flow.units[link.source]
        ref = "sys.pcm" if upstream.unit == "audio" else work_ids[link.source]
        inputs.append(ref)
        policies[ref] = link.policy
    if spec.unit != "audio":
        params["input"] = inputs + [i for i in _as_list(params.get("input")) if i not in inputs]
        params["input_policy"] = policies
    return params


def start(
    client: Client, flow: Flow, overrides: dict[str, dict[str, Any]] | None = None, timeout: float = 180.0
) -> dict[str, str]:
    """Set the flow's units up; returns unit name -> work_id."""
    work_ids: dict[str, str] = {}
    for spec in flow.order():
        work_ids[spec.name] = client.setup(spec.unit, setup_params(spec, flow, work_ids, overrides), timeout=timeout)
    return work_ids


async def start_local(conn: LocalConnection, flow: Flow, timeout: float = 180.0) -> dict[str, str]:
    work_ids: dict[str, str] = {}
    for spec in flow.order():
        answer = await conn.request(
            spec.unit, "setup", f"{spec.unit}.setup", setup_params(spec, flow, work_ids), timeout=timeout
        )
        if answer["error"]["code"] != 0:
            raise ServerError(answer)
        work_ids[spec.name] = answer["work_id"]
    return work_ids


def stop(client: Client, work_ids: dict[str, str]) -> None:
    for wid in reversed(list(work_ids.values())):
        try:
            client.exit(wid)
        except Exception:  # best effort: the server may already be gone
            pass


def _as_list(v: Any) -> list[str]:
    return [v] if isinstance(v, str) else list(v or [])
