"""Property-based requests generated from the API's own OpenAPI document (schemathesis): none gets a 500."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from processor.services.tokens import create_token
from processor.web import create_app
from tests.builders import UowFactory, make_account

# The document is read when the module is collected, before any database exists: serving it needs none.
APP = create_app({"TESTING": True})
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", APP)


@pytest.fixture
def bearer(make_uow: UowFactory, database_url: str, broker_url: str) -> dict[str, str]:
    APP.config["DATABASE_URL"] = database_url
    # An account to find, so that generated numbers sometimes meet a real one besides 404s and 422s.
    make_account(make_uow, balance="10.00")
    _, secret = create_token(make_uow(), "schemathesis", "test")
    return {"Authorization": f"Bearer {secret}"}


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=2000,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
def test_no_request_the_document_allows_gets_a_500(case: schemathesis.Case[Any], bearer: dict[str, str]) -> None:
    response = case.call(headers=bearer)
    assert response.status_code < 500, response.text
