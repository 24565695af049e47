"""A live MJPEG preview over HTTP (StackFlow's `enable_webstream`): open it in a browser.

Frames are JPEG-encoded only while someone watches; `GET /snapshot.jpg` gives one frame, any
other path the `multipart/x-mixed-replace` stream. Binds to loopback unless told otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BOUNDARY = "emberflowframe"


class MjpegServer:
    def __init__(self, host: str, port: int, jpeg: Callable[[], bytes | None]):
        self._jpeg = jpeg
        self._cond = threading.Condition()
        self._seq = 0
        self._closed = False
        self.viewers = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet: the unit logs what matters
                pass

            def do_GET(self) -> None:
                if self.path.startswith("/snapshot"):
                    self._snapshot()
                else:
                    self._stream()

            def _snapshot(self) -> None:
                data = server._jpeg()
                if data is None:
                    self.send_error(503, "no frame yet")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                server.viewers += 1
                try:
                    seen = -1
                    while True:
                        with server._cond:
                            server._cond.wait_for(partial(_changed, server, seen), timeout=5)
                            if server._closed:
                                return
                            seen = server._seq
                        data = server._jpeg()
                        if data is None:
                            continue
                        self.wfile.write(
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                            + data
                            + b"\r\n"
                        )
                except (BrokenPipeError, ConnectionResetError):
                    return
                finally:
                    server.viewers -= 1

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, name="mjpeg", daemon=True).start()

    def new_frame(self) -> None:
        with self._cond:
            self._seq += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()


def _changed(server: MjpegServer, seen: int) -> bool:
    return server._seq != seen or server._closed
