"""The web dashboard: one page on the HTTP gateway for a person to see what the box is doing.

Units and tasks live, the flow graph, the last voice turn as a waterfall, metrics, chat and
push-to-talk, camera preview, model reports. `build_router(gateway)` gives its routes; the page's
libraries are vendored from npm by `make dashboard-assets` (versions in web/package-lock.json).
"""

from emberflow.serving.dashboard.routes import build_router

__all__ = ["build_router"]
