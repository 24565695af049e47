"""The UART gateway, through a pseudo-terminal pair: the server opens the slave as its serial
device, the test plays the microcontroller on the master side."""

from __future__ import annotations

import json
import os
import pty
import select
import time
import tty

import pytest

from support import Server


class Serial:
    def __init__(self, fd: int):
        self.fd = fd
        self.buf = b""

    def send(self, msg: dict) -> None:
        os.write(self.fd, json.dumps(msg).encode())  # no newline, like several real clients

    def recv(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise TimeoutError(self.buf)
            self.buf += os.read(self.fd, 4096)
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


@pytest.fixture
def uart(tmp_path):
    master, slave = pty.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    server = Server(tmp_path, config={"uart": os.ttyname(slave)})
    yield server, Serial(master)
    server.stop()
    os.close(master)
    os.close(slave)


def test_boot_notice_sys_commands_and_llm_over_uart(uart, llm_params):
    server, port = uart
    boot = port.recv()
    assert boot["request_id"] == "0" and boot["error"]["message"] == "reset over"
    port.send({"request_id": "sys_ping", "work_id": "sys", "action": "ping", "object": "None", "data": "None"})
    assert port.recv()["error"]["code"] == 0
    port.send({"request_id": "sys_version", "work_id": "sys", "action": "version"})
    assert port.recv()["data"] == "v1.6"
    port.send(
        {
            "request_id": "llm_setup",
            "work_id": "llm",
            "action": "setup",
            "object": "llm.setup",
            "data": {**llm_params, "max_token_len": 24},
        }
    )
    setup = port.recv()
    assert setup["work_id"] == "llm.1000"
    port.send(
        {
            "request_id": "q1",
            "work_id": "llm.1000",
            "action": "inference",
            "object": "llm.utf-8.stream",
            "data": {"delta": "What is the capital of France?", "index": 0, "finish": True},
        }
    )
    chunks = [port.recv()]
    while not chunks[-1]["data"]["finish"]:
        chunks.append(port.recv())
    assert all(m["request_id"] == "q1" and m["work_id"] == "llm.1000" for m in chunks)
    assert "Paris" in "".join(m["data"]["delta"] for m in chunks)
    # TCP and UART share one router: a TCP client sees the UART's task
    with server.client() as tcp:
        assert tcp.request("llm", "taskinfo")["data"] == ["llm.1000"]


def test_uartsetup_reconfigures_the_port(uart):
    _server, port = uart
    port.recv()  # boot notice
    # Arduino's setBaudRate sends parity as a string; StackFlow docs send 110 ('n')
    port.send(
        {
            "request_id": "sys_set_baudrate",
            "work_id": "sys",
            "action": "uartsetup",
            "object": "sys.uartsetup",
            "data": {"baud": 230400, "data_bits": 8, "stop_bits": 1, "parity": "n"},
        }
    )
    assert port.recv()["error"]["code"] == 0
    port.send(
        {
            "request_id": "bad",
            "work_id": "sys",
            "action": "uartsetup",
            "object": "sys.uartsetup",
            "data": {"baud": "fast", "parity": 110},
        }
    )
    assert port.recv()["error"]["code"] == -22
    time.sleep(0.3)  # reopened ~100 ms after the reply; a pty ignores the baud rate, the link keeps working
    port.send({"request_id": "p", "work_id": "sys", "action": "ping"})
    assert port.recv()["error"]["code"] == 0
