"""UART gateway: the same protocol over a serial port (pyserial), default 115200 8N1.

A reader thread feeds the event loop; a writer thread drains an ordered queue, because one
1 KB reply takes ~90 ms on the wire at 115200 baud and must not block the loop.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import TYPE_CHECKING

import serial

from emberflow.gateways.connection import Connection, Link
from emberflow.protocol.envelope import notice

if TYPE_CHECKING:
    from emberflow.gateways.base import RequestHandler

log = logging.getLogger("emberflow.uart")
UART_CONN_ID = 5556  # StackFlow's com_id for the serial port


class UartGateway(Link):
    """The serial line's reader thread waits while the connection's inbox is full."""

    def __init__(self, router: RequestHandler, device: str, baud: int):
        self.router = router
        self.loop = asyncio.get_running_loop()
        self.port = serial.Serial(device, baud, bytesize=8, parity="N", stopbits=1, timeout=0.05)
        self._out: queue.Queue[bytes | None] = queue.Queue()
        self._lock = threading.Lock()  # reconfigure vs. read/write
        self._running = True
        self._may_read = threading.Event()  # cleared while the connection's inbox is full
        self._may_read.set()
        self.conn = Connection(router, UART_CONN_ID, "uart", self._out.put, router.cfg.max_frame, link=self)
        router.attach(self.conn)
        router.uart = self
        self._reader = threading.Thread(target=self._read_loop, name="uart-read", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name="uart-write", daemon=True)
        self._reader.start()
        self._writer.start()
        log.info("UART gateway on %s at %d baud", device, baud)

    def announce_boot(self) -> None:
        self.conn.send(notice(0, "reset over"))

    def pause_reading(self) -> None:
        self._may_read.clear()

    def resume_reading(self) -> None:
        self._may_read.set()

    def _read_loop(self) -> None:
        while self._running:
            if not self._may_read.wait(0.2):
                continue  # the serial driver's buffer holds what arrives meanwhile
            try:
                with self._lock:
                    data = self.port.read(4096) if self.port.is_open else b""
            except (serial.SerialException, OSError, TypeError) as e:
                log.error("UART read failed: %s", e)
                data = b""
                threading.Event().wait(0.2)
            if data:
                self.loop.call_soon_threadsafe(self.conn.feed, data)

    def _write_loop(self) -> None:
        while (data := self._out.get()) is not None:
            try:
                with self._lock:
                    self.port.write(data)
                    self.port.flush()
            except (serial.SerialException, OSError) as e:
                log.error("UART write failed: %s", e)

    def reconfigure(self, baud: int, data_bits: int, stop_bits: int, parity: str) -> None:
        with self._lock:
            self.port.baudrate = baud
            self.port.bytesize = data_bits
            self.port.stopbits = stop_bits
            self.port.parity = parity
        log.info("UART now %d %d%s%d", baud, data_bits, parity, stop_bits)

    def close(self) -> None:
        self._running = False
        self._may_read.set()
        self._out.put(None)
        self.conn.close()
        self._reader.join(timeout=1)
        with self._lock:
            self.port.close()
