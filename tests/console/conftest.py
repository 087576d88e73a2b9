"""The operator console on the test run's own PostgreSQL and Redis: an app per test, users made by the service."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from processor.domain.users import User
from processor.services import users
from processor.services.users import create_user
from processor.web import create_app
from tests.builders import UowFactory

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def console_app(broker_url: str, **config: Any) -> Flask:
    """The whole application as `make web` serves it, with its limiter counting in a Redis key space of its own."""
    return create_app(
        {
            "RATELIMIT_STORAGE_URI": broker_url,
            "RATELIMIT_KEY_PREFIX": f"console-test-{uuid.uuid4().hex[:8]}",
            **config,
        }
    )


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id still, at its lowest cost: the default costs about a second a hash on a busy CI machine."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(users, "_hasher", lambda: cheap)
    monkeypatch.setattr(users, "_decoy_hash", lambda: cheap.hash("decoy"))


@pytest.fixture
def app(make_uow: UowFactory, broker_url: str) -> Flask:
    return console_app(broker_url)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def make_user(make_uow: UowFactory, role: str = "operator", username: str | None = None) -> User:
    return create_user(make_uow(), username or f"u{uuid.uuid4().hex[:8]}", role, PASSWORD, actor="test")


def csrf_token(page: TestResponse) -> str:
    found = CSRF.search(page.get_data(as_text=True))
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def log_in(client: FlaskClient, user: User, password: str = PASSWORD) -> TestResponse:
    token = csrf_token(client.get("/login"))
    return client.post("/login", data={"username": user.username, "password": password, "csrf_token": token})


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)
