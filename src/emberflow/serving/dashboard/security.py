"""Same-origin rules of the dashboard's API, on top of the Guard's API key.

The Guard already refuses every `/dashboard/api/*` request without the server token (when one is
set). What it cannot see is *which page* sent a request: a browser adds the user's ambient
authority to cross-site requests, so an action must also prove it comes from our own page.

- `Host` must name this server as it was bound (loopback names for a loopback bind): a DNS
  rebinding page (evil.example resolving to 127.0.0.1) is refused even though it is "same-origin"
  to the browser.
- `Origin`, when the browser sends one, must be this very host: cross-site fetches are refused.
- Actions need the `X-Emberflow-Dashboard` header. A custom header cannot be sent cross-site
  without a CORS preflight, and CORS is off, so a form or `<img>` on another site cannot post one.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

ACTION_HEADER = "x-emberflow-dashboard"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def _hostname(netloc: str) -> str:
    """`host[:port]` -> host, lower case, with IPv6 brackets removed."""
    host = urlsplit(f"//{netloc}").hostname
    return (host or "").lower()


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SameOrigin:
    """Checks a request against the host the HTTP gateway was bound to (`http_host`)."""

    def __init__(self, bound_host: str):
        self.bound = bound_host.lower()
        self.loopback_only = _is_loopback(self.bound)

    def host_allowed(self, host_header: str) -> bool:
        host = _hostname(host_header)
        if not host:
            return False
        if self.loopback_only:
            return _is_loopback(host)
        # Bound to another address on purpose (logged as a warning): that address, or loopback
        # names from the box itself. A wildcard bind cannot know its names: the token protects it.
        if self.bound in ("0.0.0.0", "::", ""):
            return True
        return host == self.bound or _is_loopback(host)

    def check(self, request: Request, *, action: bool) -> None:
        host = request.headers.get("host", "")
        if not self.host_allowed(host):
            raise HTTPException(403, f"the dashboard answers only under this server's own host name, not {host!r}")
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
            raise HTTPException(403, "cross-origin request refused: the dashboard API is same-origin only")
        if action and request.headers.get(ACTION_HEADER) != "1":
            raise HTTPException(403, f"dashboard actions need the {ACTION_HEADER}: 1 header (sent by the page)")
