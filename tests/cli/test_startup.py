"""The user commands start without the server stack: importing the ``lariba`` command
does not import FastAPI, SQLAlchemy or uvicorn."""

from __future__ import annotations

import subprocess
import sys


def test_user_commands_do_not_import_the_server_stack() -> None:
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, lariba.cli.main; "
            "print(sorted(m for m in ('fastapi', 'sqlalchemy', 'uvicorn') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )

    assert loaded.stdout.strip() == "[]"
