"""A second text unit kind for the placement tests, so one kind can run on a remote node while
`echo` stays local: links then cross the machine boundary both ways."""

from __future__ import annotations

from units_for_tests import EchoParams, EchoUnit


class RelayParams(EchoParams):
    response_format: str = "relay.utf-8.stream"


class RelayUnit(EchoUnit):
    kind = "relay"
    Params = RelayParams
