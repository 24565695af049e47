"""Real machine facts for sys.hwinfo and sys.cmminfo (psutil; no /proc/ax_proc on a PC)."""

from __future__ import annotations

import socket
from typing import Any

import psutil


def hwinfo() -> dict[str, Any]:
    # cpu_percent(None) compares with the previous call; the daemon primes it at start-up,
    # so this answers at once instead of sleeping a second like the original.
    info: dict[str, Any] = {
        "cpu_loadavg": round(psutil.cpu_percent(interval=None)),
        "mem": round(psutil.virtual_memory().percent),
        "eth_info": _interfaces(),
    }
    temp = _temperature_milli_c()
    if temp is not None:
        info["temperature"] = temp
    return info


def _temperature_milli_c() -> int | None:
    try:
        sensors = psutil.sensors_temperatures()
    except (AttributeError, OSError):
        return None
    readings = [t.current for entries in sensors.values() for t in entries if t.current]
    return int(max(readings) * 1000) if readings else None


def _interfaces() -> list[dict[str, str]]:
    stats = psutil.net_if_stats()
    out = []
    for name, addrs in psutil.net_if_addrs().items():
        ipv4 = [a.address for a in addrs if a.family == socket.AF_INET]
        if not ipv4:
            continue
        st = stats.get(name)
        out.append({"name": name, "ip": ipv4[0], "speed": str(st.speed if st else 0)})
    return out


def cmminfo() -> dict[str, int]:
    """Memory available for models, in KB (StackFlow reports the NPU CMM pool; here it is RAM)."""
    vm = psutil.virtual_memory()
    return {"total": vm.total // 1024, "used": (vm.total - vm.available) // 1024, "remain": vm.available // 1024}
