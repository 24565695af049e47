"""The real LLM unit whose setup takes two seconds longer (a bigger model would): for /health tests
that must see the preloaded model loading, whatever the speed of the machine."""

import time

from emberflow.units.llm import LLMParams, LLMUnit


class SlowSetupLLM(LLMUnit):
    def setup(self, params: LLMParams) -> None:
        time.sleep(2.0)
        super().setup(params)
