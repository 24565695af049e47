"""The two seams between the router and the gateways, as Protocols: neither imports the other.

- `ClientConnection`: what the router needs of a client connection (TCP, UART, or in-process).
- `RequestHandler`: what a gateway needs of the router.

The daemon wires them together (constructor injection), so the router never imports a concrete
connection and no gateway imports the router.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from emberflow.protocol.envelope import Request
from emberflow.protocol.errors import Reason

if TYPE_CHECKING:
    from emberflow.sys.config import Config

WIRE_PRINCIPAL = "wire"  # StackFlow clients that have not authenticated as someone (see sys.tasks)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the router knows about a message beyond its StackFlow envelope. Wire connections
    ignore it (their bytes are StackFlow's); in-process clients route and decide by it."""

    request_id: str | None = None  # the request this message answers (an error's envelope may name another)
    reason: Reason | None = None  # machine-readable cause of an error


class PendingUpload(Protocol):
    """A sys.push stream in progress, held by its connection until it ends or the client leaves."""

    def discard(self) -> None: ...


class ClientConnection(Protocol):
    conn_id: int
    kind: str  # "tcp" | "uart" | "local"
    authed: bool
    principal: str  # who this client is, for task ownership (see emberflow.sys.tasks)
    uploads: dict[str, Any]  # sys.push streams in progress

    def send(self, msg: dict[str, Any], delivery: Delivery | None = None) -> None:
        """A reply or output for this client (binary data as bytes: the JSON edge encodes it)."""
        ...

    def request_done(self, request_id: str) -> None:
        """Request `request_id` is fully answered (nothing more will come for it)."""
        ...

    def close(self) -> None: ...


class RequestHandler(Protocol):
    cfg: Config
    uart: Any  # the UART gateway registers itself (sys.uartsetup reconfigures it)

    def new_conn_id(self) -> int: ...

    def attach(self, conn: ClientConnection) -> None: ...

    def detach(self, conn: ClientConnection) -> None: ...

    async def handle(self, conn: ClientConnection, req: Request, received: float) -> None: ...

    def cancel(self, conn: ClientConnection, work_id: str, request_id: str) -> None:
        """The client no longer wants the answer to this request: stop it, queued or running."""
        ...
