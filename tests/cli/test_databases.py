"""Databases through the command line, against a real server: create shows the password
once, reveal prints a URI that connects, delete."""

from __future__ import annotations

import json

import psycopg

from tests.cli.conftest import Lariba


def test_create_shows_password_and_reveal_gives_a_working_uri(logged_in: Lariba) -> None:
    lariba = logged_in
    lariba.ok("projects", "create", "data", "--use")

    created = lariba(
        "databases", "create", "orders", "--size", "small", "--storage-gb", "1",
        "--label", "team=shop", "--wait",
    )  # fmt: skip

    assert created.returncode == 0, created.stderr
    lines = dict(line.split(None, 1) for line in created.stdout.splitlines() if line.strip())
    password = lines["password"]
    assert len(password) >= 16
    assert "The password is shown only now" in created.stderr
    assert lines["status"] == "available"
    database_id = lines["id"]
    listed = json.loads(lariba.ok("databases", "list", "-o", "json"))
    assert [(d["id"], d["name"], d["labels"]) for d in listed] == [
        (database_id, "orders", {"team": "shop"})
    ]
    assert "password" not in lariba.ok("databases", "get", database_id)

    uri = lariba.ok("databases", "reveal", database_id).strip()

    assert password in uri
    with psycopg.connect(uri, connect_timeout=5) as conn:
        assert conn.execute("select 1").fetchone() == (1,)

    deleted = lariba("databases", "delete", database_id, "--wait")
    assert deleted.returncode == 0, deleted.stderr
    assert f"Database {database_id} deleted." in deleted.stdout


def test_reveal_unknown_database_is_exit_1(logged_in: Lariba) -> None:
    logged_in.ok("projects", "create", "nodb", "--use")

    result = logged_in("databases", "reveal", "00000000-0000-0000-0000-000000000000")

    assert result.returncode == 1
    assert "database 00000000-0000-0000-0000-000000000000 not found in project" in result.stderr
