"""The `.ember` bundle: one self-describing file holding one or more graphs.

Layout (little-endian; every section starts on a 16-byte boundary):

    header   64 B   magic "EMBRFLOW", u16 major, u16 minor, u32 section count,
                    u64 section-table offset, u64 file size, u32 table CRC32,
                    u32 header CRC32 (of the 36 bytes before it), zero padding
    table    64 B per section: name (40 B, UTF-8, NUL padded), u32 kind,
                    u32 CRC32 of the data, u64 offset, u64 size
    sections manifest (JSON) first, then one section per graph stage holding the model
             bytes (ONNX or .tflite) as the backend loads them; ONNX stages of one net store
             their common weights once in `weights/<net>` (the Engine merges them back)

The manifest describes nets, their stages (shape variants), inputs/outputs (names, shapes,
dtypes, normalisation, quantisation), target, memory plans and provenance.
Reading needs only the standard library: a device-side loader can do the same in C.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from emberflow.errors import EmberflowError

MAGIC = b"EMBRFLOW"
VERSION = (1, 0)
ALIGN = 16
HEADER = struct.Struct("<8sHHIQQII")  # 40 bytes, padded to 64
HEADER_SIZE = 64
ENTRY = struct.Struct("<40sIIQQ")  # 64 bytes
KIND_MANIFEST, KIND_MODEL, KIND_BLOB = 1, 2, 3


class BundleError(EmberflowError, ValueError):
    pass


@dataclass
class Section:
    name: str
    kind: int
    data: bytes


def _pad(n: int) -> int:
    return (-n) % ALIGN


def write_bundle(path: str | Path, manifest: dict, sections: list[Section]) -> int:
    """Write manifest + sections; returns the file size."""
    all_sections = [
        Section("manifest", KIND_MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
    ] + sections
    for s in all_sections:
        if len(s.name.encode()) > 40:
            raise BundleError(f"section name too long (max 40 bytes): {s.name}")
    table_offset = HEADER_SIZE
    offset = table_offset + ENTRY.size * len(all_sections)
    offset += _pad(offset)
    entries, body = [], bytearray()
    for s in all_sections:
        entries.append(ENTRY.pack(s.name.encode(), s.kind, zlib.crc32(s.data), offset + len(body), len(s.data)))
        body += s.data + b"\0" * _pad(len(s.data))
    table = b"".join(entries)
    start = table_offset + len(table)
    gap = b"\0" * _pad(start)
    total = start + len(gap) + len(body)
    head = HEADER.pack(MAGIC, VERSION[0], VERSION[1], len(all_sections), table_offset, total, zlib.crc32(table), 0)
    head = head[:-4] + struct.pack("<I", zlib.crc32(head[:-4]))
    data = head + b"\0" * (HEADER_SIZE - len(head)) + table + gap + bytes(body)
    assert len(data) == total
    Path(path).write_bytes(data)
    return total


@dataclass
class Bundle:
    path: str
    version: tuple[int, int]
    manifest: dict
    sections: dict[str, tuple[int, int, int, int]]  # name -> (kind, offset, size, crc)
    _data: bytes

    @property
    def size(self) -> int:
        return len(self._data)

    def section(self, name: str) -> bytes:
        if name not in self.sections:
            raise BundleError(f"{self.path}: no section {name!r} (has {', '.join(self.sections)})")
        _, offset, size, _ = self.sections[name]
        return self._data[offset : offset + size]


def read_bundle(path: str | Path, *, verify: bool = True) -> Bundle:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc}") from exc
    where = str(path)
    if len(data) < HEADER_SIZE:
        raise BundleError(f"{where}: truncated ({len(data)} bytes, the header alone is {HEADER_SIZE})")
    magic, major, minor, count, table_offset, size, table_crc, head_crc = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise BundleError(f"{where}: not an .ember bundle (magic {magic!r}, expected {MAGIC!r})")
    if zlib.crc32(data[: HEADER.size - 4]) != head_crc:
        raise BundleError(f"{where}: header is corrupted (CRC mismatch); re-create it with `emberflow pack`")
    if major != VERSION[0]:
        raise BundleError(
            f"{where}: bundle format {major}.{minor}, this emberflow reads {VERSION[0]}.x; upgrade emberflow"
        )
    if len(data) < size:
        raise BundleError(f"{where}: truncated: header says {size} bytes, file has {len(data)}")
    table_end = table_offset + ENTRY.size * count
    table = data[table_offset:table_end]
    if verify and zlib.crc32(table) != table_crc:
        raise BundleError(f"{where}: section table is corrupted (CRC mismatch)")
    sections = {}
    for i in range(count):
        raw_name, kind, crc, offset, length = ENTRY.unpack_from(table, i * ENTRY.size)
        name = raw_name.rstrip(b"\0").decode()
        if offset + length > len(data):
            raise BundleError(
                f"{where}: truncated: section {name!r} ends at byte {offset + length}, file has {len(data)}"
            )
        if verify and zlib.crc32(data[offset : offset + length]) != crc:
            raise BundleError(f"{where}: section {name!r} is corrupted (CRC mismatch)")
        sections[name] = (kind, offset, length, crc)
    if "manifest" not in sections:
        raise BundleError(f"{where}: no manifest section")
    _, off, ln, _ = sections["manifest"]
    try:
        manifest = json.loads(data[off : off + ln])
    except ValueError as exc:
        raise BundleError(f"{where}: manifest is not valid JSON ({exc})") from exc
    return Bundle(where, (major, minor), manifest, sections, data)
