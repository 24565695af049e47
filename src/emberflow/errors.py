"""The root of every error emberflow raises on purpose.

Each layer defines its own errors (`StackFlowError` at the protocol edge, `GatewayError` for HTTP,
`ModelError` in the toolchain, ...) as subclasses, and each boundary maps them to its own wire
shape: StackFlow codes on TCP/UART, OpenAI/KServe bodies on HTTP, exit code 1 on the command line.
`except EmberflowError` therefore catches exactly the failures we explain to the user, never a bug.

A leaf module: it imports nothing, so every layer may import it.
"""

from __future__ import annotations


class EmberflowError(Exception):
    """A failure emberflow explains to the user (bad input, missing model, refused action)."""
