"""Clients of a real Lariba Cloud server (see tests/fixtures/console.py): an account
signed up through the API and a client logged in with its password."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from lariba.client import Client
from tests.fixtures.console import ConsoleServer

PASSWORD = "sdk-passphrase-for-tests-7"
# Keeps a local instance running until it is stopped.
RUN_FOREVER = "exec sleep 600"


@dataclass(frozen=True)
class Account:
    email: str
    password: str = PASSWORD


def sign_up(server: ConsoleServer) -> Account:
    account = Account(email=f"sdk-{uuid.uuid4().hex[:8]}@example.com")
    with Client(server.url) as anonymous:
        user = anonymous.sign_up(email=account.email, password=account.password)
    assert user.email == account.email
    return account


@pytest.fixture
def account(console_server: ConsoleServer) -> Account:
    return sign_up(console_server)


@pytest.fixture
def client(console_server: ConsoleServer, account: Account) -> Iterator[Client]:
    with Client(console_server.url, email=account.email, password=account.password) as client:
        yield client
