"""Schemathesis against the whole OpenAPI schema of a running Lariba: every operation with
all default checks and every phase (examples, coverage, fuzzing, then the stateful phase
that follows the links between operations), as an API key of a user who owns a project.
Zero failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.console import PASSWORD, ConsoleServer
from tests.fixtures.identity import TestUser, create_project

# Examples per operation and phase: CI's default keeps the module at about three minutes
# on two CPUs; LARIBA_RELIABILITY=full looks much harder, LARIBA_SCHEMA_EXAMPLES sets it.
CI_EXAMPLES = 5
FULL_EXAMPLES = 100
# CI replays the same cases on every run (a failure there is then a change, not luck); the
# full run draws new ones each time. LARIBA_SCHEMA_SEED picks a seed.
CI_SEED = 20261130

# Where a schema-valid request is still rightly refused with 422, because the rule depends
# on state or on another field, which JSON Schema cannot state. The positive-data check
# then also accepts 422 there; every other check, and every other operation, stays strict.
# Keyed by a regular expression over "METHOD /path".
RULES_BEYOND_THE_SCHEMA: dict[str, str] = {
    r"^GET .*": "List cursors (`cursor`) are opaque tokens the API hands out: a made-up one "
    "is `invalid_cursor` (buckets' object lists: a made-up continuation token).",
    r"^(POST|PATCH) /v1/projects/\{project_id\}/(instances|databases|buckets)$": "Sizes, "
    "regions, images and engine versions come from the server's catalog (the provider's), "
    "not from the schema: an unknown one is 422 naming the field.",
    r"^POST /v1/projects/\{project_id\}/(instances|databases)/\{[a-z_]+\}/resize$": "Sizes "
    "come from the server's catalog, not from the schema.",
    r"^POST /v1/projects/\{project_id\}/database-snapshots/\{snapshot_id\}/restore$": "Sizes "
    "come from the server's catalog, not from the schema.",
    r"^PATCH /v1/projects/\{project_id\}/(instances|databases|buckets)/\{[a-z_]+\}$": "At "
    "least one of the fields must be given (`labels`, `deletion_protection`, ...), and a "
    "firewall's rules must not overlap.",
    r"^(POST|PATCH) /v1/projects/\{project_id\}/webhooks(/\{webhook_id\})?$": "A webhook's "
    "host must resolve, and only to public addresses (`webhook_host_unresolvable`, "
    "`webhook_url_unsafe`): DNS, not the schema, decides.",
    r"^(POST|PATCH) /v1/projects/\{project_id\}/alerts(/\{alert_id\})?$": "An alert's "
    "`window` range depends on its source (a metric: 1m-24h; a cost: 1m-31d).",
    r"^POST /v1/projects/\{project_id\}/transfer-ownership$": "Transferring a project to "
    "its owner is `already_owner`; to a non-member, `not_a_member`.",
    r"^POST /v1/projects/\{project_id\}/buckets/\{bucket_id\}/objects/uploads/\{upload_id\}"
    r"/complete$": "Completing an upload names parts that must have been uploaded "
    "(`invalid_part`) in order (`invalid_part_order`).",
    r"^POST /v1/projects/\{project_id\}/buckets/\{bucket_id\}/objects/presign$": "A URL "
    "to PUT needs the upload's exact `content_length`; one to GET does not take it.",
    r"^POST /v1/auth/signup$": "Common passwords, and passwords close to the e-mail, are "
    "refused: a word list decides, not the schema.",
    r"^PUT /v1/projects/\{project_id\}/budget$": "Not yet stated in the schema: an amount "
    "sent as a string must be a decimal number above 0 with at most 2 decimal places.",
}


def seed() -> int | None:
    configured = os.environ.get("LARIBA_SCHEMA_SEED")
    if configured:
        return int(configured)
    return None if os.environ.get("LARIBA_RELIABILITY") == "full" else CI_SEED


def examples_per_operation() -> int:
    configured = os.environ.get("LARIBA_SCHEMA_EXAMPLES")
    if configured:
        return int(configured)
    return FULL_EXAMPLES if os.environ.get("LARIBA_RELIABILITY") == "full" else CI_EXAMPLES


def project_owner_key(server: ConsoleServer) -> tuple[str, str]:
    """Signs a user up, creates their project and an API key; returns (key, project id).
    A key rather than an access token: the fuzzer calls logout, which would revoke a token
    under its feet (a key cannot log out, change passwords or manage keys: 403)."""
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        signed_up = anonymous.post(
            "/v1/auth/signup", json={"email": "fuzz@example.com", "password": PASSWORD}
        )
        assert signed_up.status_code == 201, signed_up.text
    with server.api(server.api_token("fuzz@example.com")) as api:
        project = api.post("/v1/projects", json={"name": "fuzzed"})
        assert project.status_code == 201, project.text
        key = api.post("/v1/me/api-keys", json={"name": "schemathesis"})
        assert key.status_code == 201, key.text
    return key.json()["key"], project.json()["id"]


def schemathesis_config(*, key: str, project_id: str, examples: int) -> str:
    accepted = '["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]'
    exceptions = "".join(
        f"""
[[operations]]
include-name-regex = '{pattern.strip()}'
checks.positive_data_acceptance.expected-statuses = {accepted}
"""
        for pattern in RULES_BEYOND_THE_SCHEMA
    )
    chosen_seed = seed()
    seed_line = f"seed = {chosen_seed}" if chosen_seed is not None else ""
    return f"""{seed_line}
headers = {{ Authorization = "Bearer {key}" }}
# Every project route gets the user's real project: a random id is only ever 404.
parameters = {{ project_id = "{project_id}" }}
# One worker: Python 3.11's ast module is not safe to use from two threads at once, and
# Hypothesis parses source while it builds strategies.
workers = 1
request-timeout = 30

[generation]
max-examples = {examples}
database = "none"
# Text never holds a NUL (U+0000): Lariba refuses it everywhere with a 422 naming the field
# before any other check (docs/api.md), which JSON Schema's "string" cannot say.
# tests/core/test_http_contract.py proves that refusal on every kind of input.
allow-x00 = false
{exceptions}"""


def run_schemathesis(url: str, config: str, directory: Path) -> dict[str, Any]:
    """Runs the CLI as a user would; returns its JSON report."""
    (directory / "schemathesis.toml").write_text(config)
    report = directory / "report.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(directory / "schemathesis.toml"),
            "--no-color",
            "run",
            f"{url}/openapi.json",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ],
        capture_output=True,
        text=True,
        cwd=directory,
        timeout=1800,
        check=False,
    )
    output = run.stdout + run.stderr
    (directory / "schemathesis.txt").write_text(output)
    assert run.returncode == 0, output[-30000:]
    summary: dict[str, Any] = json.loads(report.read_text())
    return summary


def test_schemathesis_finds_no_failure(console_server: ConsoleServer, tmp_path: Path) -> None:
    key, project_id = project_owner_key(console_server)
    examples = examples_per_operation()
    summary = run_schemathesis(
        console_server.url,
        schemathesis_config(key=key, project_id=project_id, examples=examples),
        tmp_path,
    )
    schema = httpx.get(f"{console_server.url}/openapi.json").json()
    operations = sum(method != "parameters" for path in schema["paths"].values() for method in path)
    assert summary["operations"]["tested"] == operations, summary["operations"]
    assert summary["failures"] == [] and summary["errors"] == [], summary
    assert all(phase["status"] == "success" for phase in summary["phases"].values()), summary
    assert summary["test_cases"]["generated"] >= operations * min(examples, 5)
    print(
        f"schemathesis: {operations} operations, {summary['test_cases']['generated']} cases, "
        f"{summary['running_time']:.0f} s, {examples} examples per operation"
    )


# What Schemathesis found, pinned one by one.


async def test_undecodable_body_is_422_naming_the_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/signup", content=b"\xff\xfe{", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "validation_failed"
    assert response.json()["errors"][0]["field"] == "body"


async def test_405_allows_every_method_of_the_path(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    response = await client.request("OPTIONS", "/v1/me", headers=alice.headers)
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH"}
    patched = await client.patch("/v1/me", json={"display_name": "Al"}, headers=alice.headers)
    assert patched.status_code == 200, patched.text


async def test_a_bare_number_is_not_a_time(client: httpx.AsyncClient, alice: TestUser) -> None:
    project = await create_project(client, alice)
    response = await client.get(
        f"/v1/projects/{project['id']}/usage", params={"from": "0.5"}, headers=alice.headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "from"
    iso = await client.get(
        f"/v1/projects/{project['id']}/usage",
        params={"from": "2026-11-01T00:00:00"},
        headers=alice.headers,
    )
    assert iso.status_code == 200, iso.text
    assert iso.json()["from"].startswith("2026-11-01T00:00:00")


async def test_every_error_answer_is_documented_as_problem_json(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    errors = [
        (path, method, status, response.get("content"))
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
        if int(status) >= 400
    ]
    assert len(errors) > 300
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert [e for e in errors if e[3] != problem] == []
    assert "HTTPValidationError" not in schema["components"]["schemas"]
