"""Daemon configuration: defaults, then a YAML file, then command-line options.

Secure by default: TCP binds 127.0.0.1; binding another address is an explicit choice.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

# LLM requests run one after another inside a task; a second instance lets a second client
# start at once. Embeddings batch concurrent requests into one inference instead (1 instance).
DEFAULT_INSTANCES: dict[str, int] = {"llm": 2}


@dataclass
class Config:
    host: str = "127.0.0.1"
    port: int = 10001  # StackFlow's port; 0 picks a free one (tests)
    uart: str | None = None  # e.g. /dev/ttyS1
    baud: int = 115200
    token: str | None = None  # when set, clients must send sys.auth first
    # More secrets, each its own principal (`{alice: s3cret}`): a client that authenticated as one
    # cannot drive the tasks of another. Clients sending `token` are the principal "token".
    tokens: dict[str, str] = field(default_factory=dict)
    max_frame: int = 16 * 1024 * 1024
    max_connections: int = 64  # TCP clients at once (in-process clients such as HTTP are not counted)
    # Limits that keep one client from holding a slot, memory or the disk (README, Security defaults).
    frame_timeout: float = 60.0  # s a TCP client has to finish a frame it has begun
    max_inbox: int = 1024 * 1024  # received bytes a connection has not processed yet; reading pauses beyond
    max_unsent: int = 8 * 1024 * 1024  # bytes queued for a TCP client before it counts as not reading
    send_timeout: float = 60.0  # s a TCP client may leave queued output unread before it is dropped
    auth_max_failures: int = 10  # wrong sys.auth tokens before the connection is dropped
    max_file_size: int = 64 * 1024 * 1024  # bytes per file pushed with sys.push
    sandbox_quota: int = 512 * 1024 * 1024  # bytes all files in the sandbox may take, uploads included
    max_uploads: int = 4  # unfinished sys.push streams per connection
    log_max_per_minute: int = 30  # log records per message per minute; the rest are counted, not written
    preload: list[str] = field(default_factory=list)  # unit kinds started at boot
    units: dict[str, str] = field(default_factory=dict)  # extra kinds: name -> "module:Class"
    rundir: str = ""  # ipc sockets live here; default: a fresh private temp dir
    sandbox: str = ""  # sys.push/pull files live here only
    unit_ready_timeout: float = 60.0
    # A unit process sends a heartbeat every second; one silent this long is killed and restarted.
    unit_heartbeat_timeout: float = 15.0
    # Directories an absolute file path given as `model` may point into, besides the user models
    # directory, the model cache and the sandbox (a client must not make units read any file).
    model_dirs: list[str] = field(default_factory=list)
    # Directories, besides the sandbox, where a client may name media files for units (an audio
    # `file:` source or sink, a video file as camera input).
    media_dirs: list[str] = field(default_factory=list)
    restart_backoff: tuple[float, float] = (0.5, 10.0)  # first and max delay between restarts
    flow: str | None = None
    audio: dict[str, Any] = field(default_factory=dict)  # defaults for the audio unit: source, sink, ...
    # HTTP gateway (OpenAI, KServe v2 REST, unit-native REST, /metrics); port 0 = pick a free one,
    # None = disabled. gRPC (KServe v2) likewise.
    http_host: str = "127.0.0.1"
    http_port: int | None = 8080
    grpc_port: int | None = 8001
    # Host names the HTTP gateway answers to (Host and Origin headers) besides its bound address and
    # localhost: a DNS-rebinding page names its own domain. ["*"] turns the check off.
    allowed_hosts: list[str] = field(default_factory=list)
    http_max_connections: int = 256  # HTTP connections at once; more are answered 503 and closed
    http_header_timeout: float = 10.0  # s a client has to send a request's headers
    http_idle_timeout: float = 30.0  # s an idle keep-alive connection stays open
    model_repository: str | None = None  # KServe model repository directory
    # Warm tasks the HTTP gateway may keep per model, by unit kind (`{"llm": 2}`); kinds not
    # listed use DEFAULT_INSTANCES, then 1. Capped by the unit's `max_tasks`.
    instances: dict[str, int] = field(default_factory=dict)
    log_level: str = "INFO"
    # Where unit kinds run (`{llm: {backend: ray, resources: {gpu_box: 1}}}`); kinds not listed run
    # as local processes. See `emberflow.sys.placement`.
    placement: dict[str, Any] = field(default_factory=dict)
    ray_address: str | None = None  # the Ray cluster to join ("auto", "HOST:PORT"); needed by `backend: ray`
    # The address of this machine that other cluster nodes reach it at: the control socket and the
    # data sockets of local tasks that remote tasks read are bound there (tcp), only when some kind
    # is placed on Ray. Loopback is enough for a cluster inside one box.
    bus_host: str = "127.0.0.1"
    bus_port: int = 0  # the tcp control socket's port; 0 = any free one
    # Wyoming protocol server for Home Assistant (`emberflow.bridges.wyoming`); None = off.
    wyoming_host: str = "127.0.0.1"
    wyoming_port: int | None = None
    wyoming_zeroconf: bool = False  # advertise it as _wyoming._tcp.local. (needs the zeroconf package)
    rundir_is_temporary: bool = False

    @property
    def auth_required(self) -> bool:
        return bool(self.token or self.tokens)

    def principal_for(self, secret: str) -> str | None:
        """The principal a secret authenticates as (compared in constant time), or None."""
        import hmac

        found = None
        for name, expected in [("token", self.token), *((f"token:{n}", t) for n, t in self.tokens.items())]:
            if expected and hmac.compare_digest(secret.encode(), expected.encode()):
                found = name  # no early exit: the time taken does not tell which one matched
        return found

    def instances_for(self, kind: str) -> int:
        """How many tasks per model the HTTP gateway may run at once for a unit kind."""
        return self.instances.get(kind, DEFAULT_INSTANCES.get(kind, 1))

    def resolved_rundir(self) -> Path:
        if not self.rundir:
            self.rundir = tempfile.mkdtemp(prefix="emberflow-")
            self.rundir_is_temporary = True  # removed when the daemon stops
        Path(self.rundir).mkdir(parents=True, exist_ok=True)
        os.chmod(self.rundir, 0o700)  # ipc sockets: this user only
        return Path(self.rundir)

    def model_path_roots(self) -> list[Path]:
        """Where files a client names may be (models, media): unit processes refuse others."""
        dirs = [*self.model_dirs, *self.media_dirs]
        return [Path(d).expanduser() for d in dirs] + [self.resolved_sandbox()]

    def resolved_sandbox(self) -> Path:
        p = Path(self.sandbox or Path.home() / ".local" / "share" / "emberflow" / "files")
        p.mkdir(parents=True, exist_ok=True)
        return p.resolve()


def load_config(path: Path | str | None = None, **overrides: Any) -> Config:
    cfg = Config()
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        known = {f.name for f in fields(Config)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        for k, v in data.items():
            setattr(cfg, k, v)
    for k, v in overrides.items():
        if v is not None:
            setattr(cfg, k, v)
    _check_limits(cfg)
    if not (
        isinstance(cfg.tokens, dict)
        and all(isinstance(k, str) and isinstance(v, str) and v for k, v in cfg.tokens.items())
    ):
        raise ValueError(
            f"tokens: expected a mapping of name to a non-empty secret, e.g. {{alice: s3cret}}; got {cfg.tokens!r}"
        )
    if not (
        isinstance(cfg.instances, dict)
        and all(isinstance(k, str) and type(n) is int and n >= 1 for k, n in cfg.instances.items())
    ):
        raise ValueError(
            f"instances: expected a mapping of unit kind to a whole number >= 1, e.g. {{llm: 2}}; got {cfg.instances!r}"
        )
    from emberflow.sys.placement import parse_placement

    placed = parse_placement(cfg.placement, cfg.ray_address)  # raises ValueError saying what is wrong
    if any(p.remote for p in placed.values()):
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ValueError("placement: backend ray needs Ray on this machine: pip install 'emberflow[ray]'")
    return cfg


POSITIVE_LIMITS = (
    "max_frame",
    "max_connections",
    "frame_timeout",
    "max_inbox",
    "max_unsent",
    "send_timeout",
    "auth_max_failures",
    "max_file_size",
    "sandbox_quota",
    "max_uploads",
    "log_max_per_minute",
    "http_max_connections",
    "http_header_timeout",
    "http_idle_timeout",
    "unit_heartbeat_timeout",
    "unit_ready_timeout",
)


def _check_limits(cfg: Config) -> None:
    """Every limit is a finite number above 0: a typo must not switch a protection off or make it NaN."""
    for name in POSITIVE_LIMITS:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name}: expected a number above 0, got {value!r}")
    if not (isinstance(cfg.allowed_hosts, list) and all(isinstance(h, str) for h in cfg.allowed_hosts)):
        raise ValueError(f"allowed_hosts: expected a list of host names, got {cfg.allowed_hosts!r}")
