"""A unit whose process takes seconds to start (as a big model import would): for /health tests."""

import sys
import time

from emberflow.unit import IO, Unit

if "--kind" in sys.argv:  # only in the unit process (the gateway imports this module for its schema)
    time.sleep(4)  # the unit process is not ready until this has passed


class SlowStartUnit(Unit):
    kind = "slowstart"
    needs_model = False
    inputs = {"text": IO.TEXT}
    outputs = {"text": IO.TEXT}

    def infer(self, text: str) -> str:
        return text
