"""What every Wyoming connection shares: the in-process connection to the router, the warm
tasks, the installed models and the `info` answer (built once)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from emberflow.bridges.wyoming.programs import ASR_KINDS, TTS_KINDS, build_info, installed_models
from emberflow.bridges.wyoming.tasks import WarmTasks
from emberflow.gateways.local import LocalConnection
from emberflow.models.catalogue import Catalogue

if TYPE_CHECKING:
    from wyoming.event import Event

    from emberflow.sys.router import Router


class Bridge:
    def __init__(self, router: Router):
        self.router = router
        self.conn = LocalConnection(router, "wyoming")
        self.tasks = WarmTasks(router, self.conn)
        self.models = installed_models(Catalogue(), router.units)
        self.info: Event = build_info(self.models).event()

    async def warm(self) -> None:
        """Speech recognition and the voice first: the models HA's first voice turn needs."""
        from emberflow.bridges.wyoming.audio import RATE

        if (asr := self.models.pick("asr")) is not None:
            await self.tasks.warm(ASR_KINDS, {"model": asr, "response_format": "asr.utf-8"})
        if (voice := self.models.pick("tts")) is not None:
            await self.tasks.warm(TTS_KINDS, {"model": voice, "response_format": "tts.pcm.stream", "audio_rate": RATE})

    async def close(self) -> None:
        await self.tasks.close()
        self.conn.close()
