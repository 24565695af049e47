"""The peer servers of bench/serving_vs_litserve.py, started as their own processes:

    python bench/serving_peer_apps.py litserve PORT MAX_BATCH BATCH_TIMEOUT_S
    python bench/serving_peer_apps.py ray PORT MAX_BATCH BATCH_TIMEOUT_S

Both serve POST /digits {"image": [64 floats]} -> {"logits": [...]} and POST /minilm
{"text": str} -> {"embedding": [...]}, with their own dynamic batching switched on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


try:  # module level: LitServe pickles the API classes into its worker processes
    import litserve as ls
except ImportError:  # only Ray Serve is installed
    ls = None

if ls is not None:
    from serving_models import DigitsModel, MiniLMModel

    class DigitsAPI(ls.LitAPI):
        def setup(self, device):
            self.model = DigitsModel()

        def decode_request(self, request):
            return np.asarray(request["image"], dtype=np.float32).reshape(1, 8, 8)

        def batch(self, inputs):
            return np.stack(inputs)

        def predict(self, x):
            return self.model(x)

        def unbatch(self, output):
            return list(output)

        def encode_response(self, output):
            return {"logits": output.tolist()}

    class MiniLMAPI(ls.LitAPI):
        def setup(self, device):
            self.model = MiniLMModel()

        def decode_request(self, request):
            return request["text"]

        def batch(self, inputs):
            return list(inputs)

        def predict(self, texts):
            return self.model(texts)

        def unbatch(self, output):
            return list(output)

        def encode_response(self, output):
            return {"embedding": output.tolist()}


def run_litserve(port: int, max_batch: int, timeout: float) -> None:
    apis = [
        DigitsAPI(max_batch_size=max_batch, batch_timeout=timeout, api_path="/digits"),
        MiniLMAPI(max_batch_size=max_batch, batch_timeout=timeout, api_path="/minilm"),
    ]
    server = ls.LitServer(apis, accelerator="cpu", workers_per_device=1)
    server.run(host="127.0.0.1", port=port, log_level="warning", generate_client_file=False)


def run_ray(port: int, max_batch: int, timeout: float) -> None:
    import time

    import ray
    from ray import serve
    from serving_models import DigitsModel, MiniLMModel
    from starlette.requests import Request

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})

    @serve.deployment(max_ongoing_requests=256)
    class Digits:
        def __init__(self) -> None:
            self.model = DigitsModel()

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=timeout)
        async def run(self, images: list[np.ndarray]) -> list[list[float]]:
            return [row.tolist() for row in self.model(np.stack(images))]

        async def __call__(self, request: Request) -> dict:
            body = await request.json()
            return {"logits": await self.run(np.asarray(body["image"], dtype=np.float32).reshape(1, 8, 8))}

    @serve.deployment(max_ongoing_requests=256)
    class MiniLM:
        def __init__(self) -> None:
            self.model = MiniLMModel()

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=timeout)
        async def run(self, texts: list[str]) -> list[list[float]]:
            return [row.tolist() for row in self.model(texts)]

        async def __call__(self, request: Request) -> dict:
            return {"embedding": await self.run((await request.json())["text"])}

    serve.run(Digits.bind(), name="digits", route_prefix="/digits")
    serve.run(MiniLM.bind(), name="minilm", route_prefix="/minilm")
    print("ray: ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    kind, port, max_batch, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    {"litserve": run_litserve, "ray": run_ray}[kind](port, max_batch, timeout)
