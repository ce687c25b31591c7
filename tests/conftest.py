"""Test fixtures: a real PostgreSQL, a fresh database per test, the app over httpx."""

pytest_plugins = ["tests.fixtures.database", "tests.fixtures.app", "tests.fixtures.identity"]
