"""The reference every compiled model is compared with: the `tflite-micro` interpreter.

Reference kernels, with kPreserveAllTensors so every intermediate tensor can be read after
an invoke. Streaming models keep their variables between invokes, exactly like the compiled
code keeps its state buffer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, TypedDict, cast

import numpy as np
import numpy.typing as npt


class _TensorDetails(TypedDict):
    shape: npt.NDArray[np.int32]
    tensor_data: npt.NDArray[np.generic]


class _Interpreter(Protocol):
    """What this module uses of tflite_micro's runtime.Interpreter (an untyped package)."""

    def set_input(self, input_data: npt.NDArray[np.generic], index: int) -> None: ...
    def invoke(self) -> None: ...
    def get_output(self, index: int) -> npt.NDArray[np.generic]: ...
    def GetTensor(self, tensor_index: int, subgraph_index: int) -> _TensorDetails: ...


class TflmReference:
    def __init__(self, model: str | Path) -> None:
        from tflite_micro.python.tflite_micro import runtime

        from emberflow.runtime.backends.tflm import capture_native_output

        data = Path(model).read_bytes()
        with capture_native_output():
            self.it = cast(
                _Interpreter,
                runtime.Interpreter.from_bytes(
                    data,
                    arena_size=max(1 << 20, 16 * len(data)),
                    intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors,
                ),
            )

    def run(
        self, inputs: list[np.ndarray], n_outputs: int, tensors: list[int] | None = None
    ) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
        """Outputs of one invoke, and the values of `tensors` (main subgraph indexes) after it."""
        from emberflow.runtime.backends.tflm import capture_native_output

        with capture_native_output():
            for i, x in enumerate(inputs):
                self.it.set_input(np.ascontiguousarray(x), i)
            self.it.invoke()
        outputs = [np.array(self.it.get_output(i)) for i in range(n_outputs)]
        values: dict[int, np.ndarray] = {}
        for i in tensors or []:
            got = self.it.GetTensor(i, 0)
            values[i] = np.array(got["tensor_data"]).reshape([int(d) for d in got["shape"]])
        return outputs, values
