"""Test fixtures: a real PostgreSQL, a fresh database per test, the app over httpx, a moto
server for the aws provider and fault injection in front of it."""

pytest_plugins = [
    "tests.fixtures.database",
    "tests.fixtures.app",
    "tests.fixtures.identity",
    "tests.fixtures.moto",
    "tests.fixtures.faults",
    "tests.fixtures.databases",
    "tests.fixtures.monitoring",
    "tests.fixtures.console",
]
