"""What every HTTP route shares: the router client and its warm tasks, the catalogue, metrics,
the model repository. Routes (`openai_api`, `unit_rest`, `kserve_*`) import this; it imports no route."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from emberflow.models.catalogue import Catalogue, ModelNotInstalled, ModelUnavailable, WrongModelType
from emberflow.serving.errors import GatewayError
from emberflow.serving.metrics import Metrics
from emberflow.serving.tasks import TextBatcher, UnitTasks
from emberflow.sys.tasks import Event, UnitLost

if TYPE_CHECKING:
    from emberflow.sys.config import Config
    from emberflow.sys.router import Router

log = logging.getLogger("emberflow.serving")


class Gateway:
    """What every route shares: the router client, the catalogue, metrics, the model repository."""

    def __init__(self, router: Router, cfg: Config):
        self.router = router
        self.cfg = cfg
        self.started = time.time()
        self.catalogue = Catalogue()
        # Models seen installed: checking the disk costs ~70 µs, too much for every request.
        # Only positives are kept, so a model installed while serving is found at once.
        self._installed: set[str] = set()
        self.metrics = Metrics()
        self._unit_classes: dict[str, Any] = {}
        self._check_instances()
        self.tasks = UnitTasks(router, router.tasks, instances=self.instances_for)
        router.tasks.subscribe(self._on_event)
        self.metrics.add_depth_source(self.tasks.queue_depth)
        self.metrics.add_instances_source(self.tasks.live_instances)
        self.repository: Any = None  # KServe model repository, when configured
        self._embed_batchers: dict[str, TextBatcher] = {}
        self.metrics.add_depth_source(lambda: {m: b.depth() for m, b in self._embed_batchers.items()})

    def require_model(self, name: str, types: tuple[str, ...]) -> dict[str, Any]:
        """The descriptor of an installed model of one of these types, or a 404 saying why not."""
        for model_type in types:
            try:
                # Models seen installed are not checked on disk again (~70 µs a request).
                ref = self.catalogue.resolve(name) if name in self._installed else self.catalogue.find(name, model_type)
            except WrongModelType:
                continue
            except ModelNotInstalled as e:
                raise GatewayError(
                    404,
                    f"The model `{name}` is not installed: {e}",
                    type="invalid_request_error",
                    code="model_not_found",
                    param="model",
                ) from None
            except (ModelUnavailable, KeyError):
                break
            if ref.type == model_type:
                self._installed.add(name)
                return ref.descriptor
        known = [d["mode"] for d in self.catalogue.models.values() if d.get("type") in types]
        raise GatewayError(
            404,
            f"The model `{name}` does not exist or cannot serve this endpoint; "
            f"available: {', '.join(known) or 'none'} (GET /v1/models)",
            type="invalid_request_error",
            code="model_not_found",
            param="model",
        )

    def default_model(self, model_type: str) -> str | None:
        """The installed model of a type, the catalogue's default first."""
        installed = [
            d for d in self.catalogue.models.values() if d.get("type") == model_type and self.catalogue.is_installed(d)
        ]
        installed.sort(key=lambda d: not d.get("default"))
        return installed[0]["mode"] if installed else None

    def llm_params(self, model: str) -> dict[str, Any]:
        return {"model": model, "response_format": "llm.utf-8.stream", "enoutput": True}

    def embed_params(self, model: str) -> dict[str, Any]:
        return {"model": model, "response_format": "embed.json", "enoutput": True}

    def embed_batcher(self, model: str) -> TextBatcher:
        """Concurrent /v1/embeddings requests for one model share unit inferences (dynamic batching)."""
        batcher = self._embed_batchers.get(model)
        if batcher is None:
            batcher = self._embed_batchers[model] = TextBatcher(
                self.tasks, "embed", self.embed_params(model), label=model, metrics=self.metrics
            )
        return batcher

    def unit_class(self, kind: str) -> Any:
        """A unit kind's class, for its declared schema and limits (it runs in its own process,
        never here); None when the kind is unknown or its module is broken."""
        if kind not in self._unit_classes:
            from emberflow.unit.registry import load_unit_class

            try:
                self._unit_classes[kind] = load_unit_class(kind, self.router.units.get(kind))
            except Exception as e:  # a broken user unit must not take the gateway down
                log.warning("unit %s: %s", kind, e)
                self._unit_classes[kind] = None
        return self._unit_classes[kind]

    def max_tasks(self, kind: str) -> int | None:
        """The unit's own limit on tasks per process (None: the kind cannot be loaded)."""
        cls = self.unit_class(kind)
        return None if cls is None else cls.max_tasks

    def instances_for(self, kind: str) -> int:
        """Tasks per model for a unit kind: the configured `instances`, capped by `max_tasks`."""
        limit = self.max_tasks(kind)
        wanted = self.cfg.instances_for(kind)
        return wanted if limit is None else max(1, min(wanted, limit))

    def _check_instances(self) -> None:
        for kind, wanted in self.cfg.instances.items():
            limit = self.max_tasks(kind)
            if limit is None:
                log.warning("instances: no unit of kind %r (known: %s)", kind, ", ".join(sorted(self.router.units)))
            elif wanted > limit:
                log.warning(
                    "instances: %s asks for %d tasks per model, but the %s unit hosts at most %d "
                    "(its max_tasks); using %d",
                    kind,
                    wanted,
                    kind,
                    limit,
                    limit,
                )

    def _on_event(self, event: Event) -> None:
        """A unit process died or sys.reset ran: load a preloaded model again right away, so
        /health says 503 until it is back and the next request finds it warm."""
        if isinstance(event, UnitLost) and event.kind in self.cfg.preload:
            self.warm_preloaded(kinds=[event.kind])

    def warm_preloaded(self, kinds: list[str] | None = None) -> None:
        """`preload` means a warm default model: for each preloaded kind that an OpenAI route serves,
        set up the task that route will use (same params) in the background; /health answers 503
        until it is loaded. Kinds whose unit hosts a single task (tts, whisper) keep only their
        process preloaded, so StackFlow clients and flows can still set that task up."""
        # the params each route really sends (the embeddings batcher may adjust its own)
        for kind, params in self._warm_params(kinds):
            self.tasks.warm(kind, params)

    def _warm_params(self, kinds: list[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
        # the params each route really sends (the embeddings batcher may adjust its own)
        routes = {"llm": self.llm_params, "embed": lambda model: self.embed_batcher(model).params}
        out = []
        for kind in dict.fromkeys(self.cfg.preload if kinds is None else kinds):
            params = routes.get(kind)
            model = self.default_model(kind) if params else None
            if params is not None and model is not None:
                out.append((kind, params(model)))
        return out

    def loading(self) -> list[str]:
        """What is not ready: preloaded unit processes, task setups, preloaded models whose warm
        task is gone (a crash, a failed load), repository models."""
        waiting = [
            f"unit {k}"
            for k in self.cfg.preload
            if (up := self.router.supervisor.procs.get(k)) is None or not up.ready.is_set()
        ]
        loading = self.tasks.loading()
        waiting += [f"task {t}" for t in loading]
        waiting += [
            f"task {kind} {params['model']} (not loaded)"
            for kind, params in self._warm_params()
            if not self.tasks.has_task(kind, params) and f"{kind} {params['model']}" not in loading
        ]
        if self.repository is not None:
            waiting += [f"model {m}" for m in self.repository.loading()]
        return waiting

    async def close(self) -> None:
        if self.repository is not None:
            await self.repository.close()
        for b in self._embed_batchers.values():
            await b.close()
        await self.tasks.close()
