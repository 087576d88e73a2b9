"""The HTTP API on the real database and the run's Redis, through Flask's test client; no worker runs here, so an
outcome is recorded by calling the worker's own service where a test needs one."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import redis
import sqlalchemy
from kombu.connection import Connection

from processor.domain.requests import PaymentType
from processor.messages import QUEUE
from processor.services.tokens import create_token, revoke_token
from processor.web import create_app
from tests.builders import UowFactory, make_account, pay
from tests.requests import request, unique
from tests.web import Api, problem_fields


@pytest.fixture
def queued(broker_url: str) -> Callable[[], int]:
    """How many messages wait in the payments queue of this run's Redis."""
    client = redis.Redis.from_url(broker_url)
    return lambda: int(client.llen(QUEUE))


def transfer_body(source: str, destination: str, amount: str = "12.50") -> dict[str, str]:
    return {"type": "transfer", "source": source, "destination": destination, "amount": amount, "currency": "GBP"}


def test_no_token_a_wrong_one_or_a_revoked_one_is_401(api: Api, make_uow: UowFactory) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {api.token}"}):
        response = api.client.get("/api/v1/payments/ref-1", headers=headers)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    token, secret = create_token(make_uow(), "soon revoked", "test")
    assert api.client.get("/api/v1/payments/ref-1", headers={"Authorization": f"Bearer {secret}"}).status_code == 404
    revoke_token(make_uow(), token.id, "test")
    assert api.client.get("/api/v1/payments/ref-1", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_a_token_is_stored_as_its_sha256_only(make_uow: UowFactory) -> None:
    token, secret = create_token(make_uow(), "payroll", "test")
    with make_uow() as uow:
        stored = uow.session.execute(sqlalchemy.text("SELECT * FROM api_tokens WHERE id = :id"), {"id": token.id})
        row = stored.mappings().one()
    assert secret not in {str(v) for v in row.values()}
    assert row["token_sha256"] == hashlib.sha256(secret.encode()).hexdigest()


def test_an_invalid_body_is_422_naming_each_field_and_nothing_is_sent(api: Api, queued: Callable[[], int]) -> None:
    before = queued()
    body = {"type": "transfer", "source": "12", "amount": "1.005", "currency": "gbp"}
    response = api.pay(None, body)
    assert problem_fields(response) == {"Idempotency-Key", "source", "destination", "amount", "currency"}
    assert problem_fields(api.pay("ok-1", {**transfer_body("x", "y"), "colour": "red"})) == {"colour"}
    assert problem_fields(api.pay("ok-2", [1, 2])) == {"body"}
    assert problem_fields(api.pay("bad key!", transfer_body("10000001", "10000002"))) >= {"Idempotency-Key"}
    assert queued() == before


def test_a_payment_is_enqueued_pending_with_its_location(
    api: Api, make_uow: UowFactory, queued: Callable[[], int]
) -> None:
    a, b = make_account(make_uow, balance="100.00"), make_account(make_uow)
    key, before = unique("api"), queued()
    response = api.pay(key, transfer_body(a.number, b.number))
    assert response.status_code == 202, response.get_json()
    assert response.headers["Location"] == f"/api/v1/payments/{key}"
    body = response.get_json()
    assert (body["reference"], body["status"], body["amount"], body["source"]) == (key, "pending", "12.50", a.number)
    assert queued() == before + 1
    # Not recorded yet: sent again, which is safe (the worker applies a reference once) and covers a lost send.
    assert api.pay(key, transfer_body(a.number, b.number)).status_code == 202
    assert queued() == before + 2
    assert api.get(f"/payments/{key}").status_code == 404
    with make_uow() as uow:
        audited = uow.audit.for_entity("transaction", key)
    # Each send is on the audit record, with the token's name as the actor.
    assert [(row.action, row.details["via"], row.details["amount"]) for row in audited] == [
        ("payment.enqueued", "api", "12.50")
    ] * 2
    assert all("tests" in row.actor for row in audited), [row.actor for row in audited]


def test_once_recorded_the_same_body_is_200_and_another_is_409_with_the_outcome(
    api: Api, make_uow: UowFactory, queued: Callable[[], int]
) -> None:
    a, b = make_account(make_uow, balance="100.00"), make_account(make_uow)
    key = unique("api")
    # What a worker does with the message the API sends: the worker's own service records the outcome.
    pay(make_uow, request(PaymentType.TRANSFER, "12.50", source=a, destination=b, reference=key))
    before = queued()
    again = api.pay(key, transfer_body(a.number, b.number))
    assert again.status_code == 200
    assert (again.get_json()["status"], again.get_json()["delivery"]) == ("applied", "duplicate")
    assert queued() == before

    other = api.pay(key, transfer_body(a.number, b.number, "99.00"))
    assert other.status_code == 409
    assert other.mimetype == "application/problem+json"
    problem = other.get_json()
    assert (problem["outcome"]["status"], problem["outcome"]["amount"]) == ("applied", "12.50")
    # Sent all the same, so that the worker records the attempt beside the outcome for operators to see.
    assert queued() == before + 1

    outcome = api.get(f"/payments/{key}")
    assert outcome.status_code == 200
    assert (outcome.get_json()["reference"], outcome.get_json()["status"]) == (key, "applied")


def test_a_batch_is_202_with_a_line_per_payment_or_422_naming_each_row_field(
    api: Api, make_uow: UowFactory, queued: Callable[[], int]
) -> None:
    a, b = make_account(make_uow, balance="100.00"), make_account(make_uow)
    rows = [{"reference": unique("row"), **transfer_body(a.number, b.number, f"{i}.00")} for i in range(1, 4)]
    before = queued()
    bad = api.batch([rows[0], {**rows[1], "amount": "0"}, {**rows[2], "reference": None, "currency": "XX"}])
    assert problem_fields(bad) == {"payments[1].amount", "payments[2].reference", "payments[2].currency"}
    assert queued() == before
    assert problem_fields(api.batch([])) == {"payments"}

    response = api.batch(rows)
    assert response.status_code == 202
    lines = response.get_json()["payments"]
    assert [(p["reference"], p["status"]) for p in lines] == [(r["reference"], "pending") for r in rows]
    assert queued() == before + 1  # one payments.batch message


def test_accounts_and_paged_statements(api: Api, make_uow: UowFactory) -> None:
    a = make_account(make_uow, balance="100.00")
    for amount in ("1.00", "2.00", "3.00"):
        pay(make_uow, request(PaymentType.DEPOSIT, amount, destination=a))
    account = api.get(f"/accounts/{a.number}")
    assert account.status_code == 200
    assert (account.get_json()["number"], account.get_json()["balance"]) == (a.number, "106.00")
    first = api.client.get(
        f"/api/v1/accounts/{a.number}/statement", query_string={"limit": 3}, headers=api.headers()
    ).get_json()
    assert [e["amount"] for e in first["items"]] == ["100.00", "1.00", "2.00"]
    second = api.client.get(
        f"/api/v1/accounts/{a.number}/statement",
        query_string={"limit": 3, "cursor": first["next"]},
        headers=api.headers(),
    ).get_json()
    assert ([e["amount"] for e in second["items"]], second["next"]) == (["3.00"], None)
    assert api.get("/accounts/10000000000000").status_code in (404, 422)
    bad = api.client.get(
        f"/api/v1/accounts/{a.number}/statement", query_string={"from": "yesterday"}, headers=api.headers()
    )
    assert problem_fields(bad) == {"from"}


def test_unknown_paths_are_problems_too(api: Api) -> None:
    response = api.get("/nothing-here")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_healthz_names_what_cannot_be_reached(api: Api, database_url: str) -> None:
    assert api.client.get("/healthz").get_json() == {"status": "ok", "database": True, "broker": True}
    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    # A producer whose broker is a port nothing listens on (CELERY_BROKER_URL, which the run sets, would win over a
    # Celery app's own broker setting).
    down = SimpleNamespace(connection_for_write=lambda: Connection("redis://127.0.0.1:1/0"))  # type: ignore[no-untyped-call]
    app.extensions["processor.client"] = SimpleNamespace(app=down)
    response = app.test_client().get("/healthz")
    assert (response.status_code, response.get_json()["broker"], response.get_json()["database"]) == (503, False, True)


def test_the_openapi_document_describes_every_route(api: Api) -> None:
    document = api.client.get("/api/v1/openapi.json").get_json()
    assert set(document["paths"]) == {
        "/api/v1/payments",
        "/api/v1/payment-batches",
        "/api/v1/payments/{reference}",
        "/api/v1/accounts/{number}",
        "/api/v1/accounts/{number}/statement",
        "/healthz",
    }
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_a_body_over_4_mib_is_refused_before_it_is_read(api: Api) -> None:
    response = api.client.post(
        "/api/v1/payment-batches",
        data=b"[" * (4 * 1024 * 1024 + 1),
        headers=api.headers(**{"Content-Type": "application/json"}),
    )
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
