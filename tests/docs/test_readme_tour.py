"""The README's tour, run word for word against a real `lariba serve`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.fixtures.serve import free_port, serve, stop

README = Path(__file__).resolve().parents[2] / "README.md"


def _tour() -> str:
    text = README.read_text()
    block = re.search(r"<!-- tour:start -->\n```sh\n(.*?)```\n<!-- tour:end -->", text, re.S)
    assert block, "README has no tour block"
    return block.group(1)


def test_readme_tour_runs_as_written(tmp_path: Path) -> None:
    port = free_port()
    script = _tour().replace("http://127.0.0.1:8000", f"http://127.0.0.1:{port}")
    with serve(tmp_path / "data", port, tmp_path / "serve.log") as process:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert stop(process) == 0
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert '"email":"ada@example.com"' in out
    assert '"email":"grace@example.com"' in out
    assert '"role":"member"' in out
    assert '"name":"analytics"' in out
    assert '"code":"project_not_found"' in out
    assert '"code":"session_revoked"' in out
    # The instance ran, printed its greeting on its console, and was deleted.
    assert '"type":"create","status":"succeeded"' in out
    assert '"name":"hello"' in out and '"status":"running"' in out
    assert "Hello from " in out
    assert '"type":"delete","status":"succeeded"' in out
    assert '"meter":"instance","sku":"nano"' in out
    assert '"forecast":{"month":' in out
    assert "deleted instance hello" in out
