"""Issue 15 item 17 (sys.push/pull): paths that cannot name a file (a NUL byte, too long, a
directory, the sandbox itself) used to become `-2 "internal error"`; they are -17 with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from emberflow.client import ServerError


@pytest.mark.parametrize("action", ["push", "pull"])
@pytest.mark.parametrize("path", ["nul\u0000byte.txt", "x" * 300, "deep/" * 1000 + "f", "adir", "."])
def test_paths_that_cannot_be_files_are_file_errors_not_internal_errors(server, action, path):
    (Path(server.config_path).parent / "files" / "adir").mkdir(parents=True, exist_ok=True)
    with server.client() as c:
        with pytest.raises(ServerError) as e:
            c.request("sys", action, f"sys.file.{path}", "x")
        assert e.value.code == -17, e.value.msg
        assert c.ping()["error"]["code"] == 0
