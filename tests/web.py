"""The HTTP API as an upstream system meets it: Flask's test client holding a real bearer token."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from processor.services.tokens import create_token
from processor.web import create_app
from tests.builders import UowFactory


class Api:
    """Requests to /api/v1 with `Authorization: Bearer` set, on the test database and the run's Redis."""

    def __init__(self, make_uow: UowFactory, database_url: str) -> None:
        self.app = create_app({"TESTING": True, "DATABASE_URL": database_url})
        self.client: FlaskClient = self.app.test_client()
        _, self.token = create_token(make_uow(), "tests", "test")

    def headers(self, key: str | None = None, **more: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}", **more}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    def pay(self, key: str | None, body: Any) -> TestResponse:
        return self.client.post("/api/v1/payments", json=body, headers=self.headers(key))

    def batch(self, payments: list[Any]) -> TestResponse:
        return self.client.post("/api/v1/payment-batches", json={"payments": payments}, headers=self.headers())

    def get(self, path: str, **headers: str) -> TestResponse:
        return self.client.get(f"/api/v1{path}", headers=self.headers(**headers))


def problem_fields(response: TestResponse) -> set[str]:
    """The fields a 422 names, after checking it is a problem document."""
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 422
    return {e["field"] for e in body["errors"]}
