"""Unit kinds for bench/ray_placement.py: the same classes as the local kinds they are compared
with, under another kind name so that one daemon can place them on a Ray node while the
originals stay local. Registered through the daemon config (bench/ on PYTHONPATH)."""

from __future__ import annotations

from bench_units import Sink, SinkParams, Ticker, TickerParams

from emberflow.units.llm import LLMUnit


class RemoteTickerParams(TickerParams):
    response_format: str = "ticker_r.utf-8.stream"


class RemoteTicker(Ticker):
    kind = "ticker_r"
    Params = RemoteTickerParams


class RemoteSink(Sink):
    kind = "sink_r"
    Params = SinkParams


class RemoteLLM(LLMUnit):
    kind = "llm_r"
    model_type = "llm"  # the catalogue's llm models, as for `llm`


class HopSourceParams(TickerParams):
    response_format: str = "hopsrc.utf-8.stream"


class HopSource(Ticker):
    """The local task whose frames go to a local sink and to one on node B at once (`ticker`
    hosts one task, taken by the round-trip figures)."""

    kind = "hopsrc"
    Params = HopSourceParams
