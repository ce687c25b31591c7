"""docs/sdk.md's quick start, run word for word against a real server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from lariba.client import Client
from tests.fixtures.console import ConsoleServer

SDK_DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


def _quick_start() -> str:
    text = SDK_DOC.read_text()
    block = re.search(
        r"<!-- quickstart:start -->\n```python\n(.*?)```\n<!-- quickstart:end -->", text, re.S
    )
    assert block, "docs/sdk.md has no quick start block"
    return block.group(1)


def test_quick_start_runs_as_written(console_server: ConsoleServer) -> None:
    script = _quick_start().replace("http://127.0.0.1:8000", console_server.url)

    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=180, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Hello, Ada" in result.stdout
    assert "hello running" in result.stdout
    assert "succeeded" in result.stdout
    with Client(
        console_server.url, email="ada@example.com", password="analytical-engine-1843"
    ) as client:
        assert client.projects.list() == []
