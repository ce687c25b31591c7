"""The load test's short mode, as CI runs it: a real ``lariba serve`` under 20 users for 20 s
on the whole mix, with no error and every endpoint of the mix exercised. The full run
(200 users for 60 s) is ``make reliability``; its figures are in docs/reliability.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.load_users import ENDPOINTS

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_short_load_run_has_no_error_and_exercises_every_endpoint(tmp_path: Path) -> None:
    summary_path = tmp_path / "load.json"
    env = {name: value for name, value in os.environ.items() if not name.startswith("LARIBA_")}
    run = subprocess.run(
        [sys.executable, "-m", "bench.load_mix", "--short", "--json", str(summary_path)],
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr[-6000:]}"

    summary = json.loads(summary_path.read_text())
    assert summary["users"] == 20
    assert summary["errors"] == 0
    assert summary["first_errors"] == []
    assert set(summary["endpoints"]) == set(ENDPOINTS)
    unexercised = [name for name, row in summary["endpoints"].items() if row["requests"] == 0]
    assert unexercised == []
    assert all(row["errors"] == 0 for row in summary["endpoints"].values())
    # Every instance's life ran to its end: as many deletes as creates, bar the clean-up's.
    creates = summary["endpoints"]["POST /instances"]["requests"]
    assert creates >= summary["endpoints"]["DELETE /instances/{id}"]["requests"] >= 1
    # The server was measured: its API process has memory, its PostgreSQL too.
    assert summary["server"]["peak_pss_mb"]["api"] > 0
    assert summary["server"]["peak_pss_mb"]["postgresql"] > 0
    assert summary["machine"]["postgresql"].startswith("postgres")
    # The table printed names every endpoint.
    for name in ENDPOINTS:
        assert name in run.stdout
