"""The host side of the Validation app's serial protocol (see apps/app_validation.c).

Frames: 0xA5 0x5A, type (1 byte), payload length (4, little endian), payload, CRC-32 of
type + length + payload. The same code talks to QEMU's UART on a TCP socket and to a board
on /dev/ttyACM0: both are pyserial URLs.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from emberflow.errors import EmberflowError

PROTOCOL_VERSION = 1
SYNC = b"\xa5\x5a"
HELLO, HELLO_ACK, RUN, LAYER, OUTPUT, DONE, RESET, BYE, ERROR = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    15,
)


class ProtocolError(EmberflowError, RuntimeError):
    pass


@dataclass
class DeviceModel:
    name: str
    input_sizes: list[int]
    output_sizes: list[int]
    layers: int


@dataclass
class DeviceResult:
    outputs: list[bytes]
    layers: dict[tuple[int, int], bytes]
    ticks: int


def frame(kind: int, payload: bytes) -> bytes:
    head = struct.pack("<BI", kind, len(payload))
    return SYNC + head + payload + struct.pack("<I", zlib.crc32(head + payload))


class Link:
    """A framed, CRC-checked link to the Validation app."""

    def __init__(self, url: str, timeout: float = 120.0, baudrate: int = 115200) -> None:
        import serial

        try:
            self.port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout)
        except (serial.SerialException, ValueError) as exc:
            raise ProtocolError(f"cannot open {url}: {exc}") from exc
        self.url = url

    def close(self) -> None:
        self.port.close()

    def _read(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.port.read(n - len(data))
            if not chunk:
                raise ProtocolError(f"no answer from the device on {self.url} (timed out)")
            data += chunk
        return bytes(data)

    def send(self, kind: int, payload: bytes = b"") -> None:
        self.port.write(frame(kind, payload))

    def receive(self) -> tuple[int, bytes]:
        while True:  # resynchronise on the sync bytes, as the device does
            if self._read(1) == SYNC[:1] and self._read(1) == SYNC[1:]:
                break
        head = self._read(5)
        kind, length = struct.unpack("<BI", head)
        payload = self._read(length)
        (crc,) = struct.unpack("<I", self._read(4))
        if crc != zlib.crc32(head + payload):
            raise ProtocolError("a frame from the device failed its CRC check")
        if kind == ERROR:
            raise ProtocolError(f"device error {payload[0]}: {payload[1:].decode(errors='replace')}")
        return kind, payload

    def hello(self) -> list[DeviceModel]:
        self.send(HELLO, bytes([PROTOCOL_VERSION]))
        kind, p = self.receive()
        if kind != HELLO_ACK:
            raise ProtocolError(f"expected HELLO_ACK, got frame type {kind}")
        if p[0] != PROTOCOL_VERSION:
            raise ProtocolError(f"device speaks protocol version {p[0]}, this emberflow speaks {PROTOCOL_VERSION}")
        models, at = [], 2
        for _ in range(p[1]):
            n = p[at]
            name = p[at + 1 : at + 1 + n].decode()
            at += 1 + n
            n_in, n_out = p[at], p[at + 1]
            (layers,) = struct.unpack_from("<I", p, at + 2)
            at += 6
            sizes = list(struct.unpack_from(f"<{n_in + n_out}I", p, at))
            at += 4 * (n_in + n_out)
            models.append(DeviceModel(name, sizes[:n_in], sizes[n_in:], layers))
        return models

    def run(self, model: int, inputs: list[bytes], per_layer: bool) -> DeviceResult:
        self.send(RUN, bytes([model, int(per_layer)]) + b"".join(inputs))
        outputs: dict[int, bytes] = {}
        layers: dict[tuple[int, int], bytes] = {}
        while True:
            kind, p = self.receive()
            if kind == LAYER:
                layer, k = struct.unpack_from("<IB", p)
                layers[(layer, k)] = p[6:]
            elif kind == OUTPUT:
                outputs[p[0]] = p[1:]
            elif kind == DONE:
                _, lo, hi = struct.unpack("<iII", p)
                return DeviceResult([outputs[i] for i in sorted(outputs)], layers, lo | hi << 32)
            else:
                raise ProtocolError(f"unexpected frame type {kind} during RUN")

    def reset(self, model: int) -> None:
        self.send(RESET, bytes([model]))
        self.receive()

    def bye(self) -> None:
        self.send(BYE)
        self.receive()
