"""HTTP API v1 (ARCHITECTURE section 11): payments enqueued with an Idempotency-Key, outcomes, accounts and
statements, for upstream systems holding a bearer token. Views stay thin: the services decide, processor.messages
validates, and the OpenAPI document at /api/v1/openapi.json is generated from the routes by spectree."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import kombu.exceptions
import sqlalchemy.exc
from flask import Blueprint, Flask, Response, current_app, g, json, request, url_for
from spectree import Response as Responses
from spectree import SecurityScheme, SecuritySchemeData, SpecTree
from spectree.models import SecureType
from werkzeug.exceptions import HTTPException

from processor.bootstrap import unit_of_work
from processor.config import get_settings
from processor.db.uow import UnitOfWork
from processor.domain.errors import FieldError, InvalidRequest, InvalidValue, NotFound, Unavailable
from processor.domain.outcomes import OutcomeStatus
from processor.domain.requests import parse_reference
from processor.logs import log_event
from processor.messages import BATCH_MAX, PaymentMessage, batch_item, from_fields
from processor.presenters import account_json, outcome_json, statement_json
from processor.services import accounts as account_services
from processor.services import reading
from processor.services.health import database_reachable
from processor.services.intake import Intake, enqueue_payments
from processor.services.payments import get_outcome
from processor.services.tokens import authenticate
from processor.terminal import in_zone
from processor.web.api import schemas
from processor.web.api.problems import CONFLICT, UNAVAILABLE, Problem, invalid

PREFIX = "/api/v1"
IDEMPOTENCY_KEY = "Idempotency-Key"
PAYMENT_FIELDS = frozenset({"type", "source", "destination", "amount", "currency", "description"})
BATCH_FIELDS = PAYMENT_FIELDS | {"reference"}

spec = SpecTree(
    "flask",
    title="ABC Bank transaction processor",
    version="1",
    # spectree leaves out of the document every route under its own path, so that is not /api/v1 itself; the
    # document is served at /api/v1/openapi.json as well (below), where the contract puts it.
    path=f"{PREFIX.strip('/')}/spec",
    mode="strict",
    page_templates={},
    # Plain model names in the document (the models' names are unique), not spectree's hashed ones.
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    # What spectree documents as a route's 422 where none is declared: ours, not its own error list.
    validation_error_model=schemas.Problem,
    annotations=False,
    security_schemes=[SecurityScheme(name="bearer", data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer"))],
    security={"bearer": []},
)

api = Blueprint("api", __name__, url_prefix=PREFIX)

PROBLEMS = {"HTTP_401": schemas.Problem, "HTTP_422": schemas.Problem, "HTTP_503": schemas.Problem}


def register(app: Flask) -> None:
    """Add the API's blueprint, /healthz and the OpenAPI document to the application."""
    app.register_blueprint(api)
    app.add_url_rule("/healthz", "healthz", healthz)
    app.add_url_rule(f"{PREFIX}/openapi.json", "openapi", lambda: _json(spec.spec, 200))
    app.register_error_handler(Problem, lambda problem: problem.response())
    app.register_error_handler(HTTPException, _http_problem)
    spec.register(app)


def _uow() -> UnitOfWork:
    return unit_of_work(current_app.config.get("DATABASE_URL"))


def _client() -> Any:
    """The producer (submit.client.Client): the same validation and sending as every other sender."""
    client = current_app.extensions.get("processor.client")
    if client is None:
        from submit.client import Client

        client = current_app.extensions["processor.client"] = Client(
            database_url=current_app.config.get("DATABASE_URL")
        )
    return client


def _http_problem(error: HTTPException) -> Response | HTTPException:
    # The console keeps Flask's own pages; only the API's paths answer in problem details.
    if request.path.startswith(PREFIX) or request.path == "/healthz":
        return Problem(error.code or 500, error.description).response()
    return error


@api.errorhandler(InvalidRequest)
def _invalid_request(error: InvalidRequest) -> Response:
    return invalid(error.errors).response()


@api.errorhandler(InvalidValue)
def _invalid_value(error: InvalidValue) -> Response:
    return invalid([FieldError(error.field, error.message)]).response()


@api.errorhandler(NotFound)
def _not_found(error: NotFound) -> Response:
    return Problem(404, str(error)).response()


@api.errorhandler(Unavailable)
@api.errorhandler(sqlalchemy.exc.OperationalError)
@api.errorhandler(kombu.exceptions.OperationalError)
def _unavailable(error: Exception) -> Response:
    # The request may succeed unchanged later; the error's text can name hosts, so it goes to the log only.
    log_event("api.unavailable", 40, path=request.path, error=type(error).__name__)
    detail = "the database or the broker cannot be reached; send the same request again later"
    return Problem(503, detail, UNAVAILABLE, headers={"Retry-After": "5"}).response()


@api.before_request
def _authenticate() -> None:
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    token = authenticate(_uow(), secret.strip()) if scheme.lower() == "bearer" and secret.strip() else None
    if token is None:
        raise Problem(
            401,
            "send Authorization: Bearer TOKEN with a token from `processor api-token create`",
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )
    g.api_token = token


def _body(allowed: frozenset[str]) -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise invalid([FieldError("body", "must be a JSON object (Content-Type: application/json)")])
    return _check_keys(body, allowed, "")


def _check_keys(body: dict[str, Any], allowed: frozenset[str], prefix: str) -> dict[str, Any]:
    unexpected = sorted(str(k)[:40] for k in body if k not in allowed)
    if unexpected:
        shown = ", ".join(repr(k) for k in unexpected[:5])
        raise invalid([FieldError(f"{prefix}{unexpected[0]}", f"unexpected field(s): {shown}")])
    return body


def _answer(intakes: Sequence[Intake]) -> list[dict[str, Any]]:
    return [dict(outcome_json(i.outcome)) for i in intakes]


def _json(data: object, status: int, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(data), status, headers=dict(headers or {}), mimetype="application/json")


@api.post("/payments")
@spec.validate(
    json=schemas.Payment,
    headers=schemas.IdempotencyKey,
    resp=Responses(
        HTTP_200=schemas.OutcomeOut, HTTP_202=schemas.OutcomeOut, HTTP_409=schemas.ConflictProblem, **PROBLEMS
    ),
    skip_validation=True,
    tags=["payments"],
)
def post_payment() -> Response:
    """Enqueue a payment under its reference, the Idempotency-Key.

    202 and pending when it is sent; the same key and body again: 200 with the outcome once recorded (nothing is
    sent twice), 202 while it is not; another body under a recorded key: 409 with the outcome, which stands.
    """
    body = _body(PAYMENT_FIELDS)
    key = request.headers.get(IDEMPOTENCY_KEY)
    try:
        message = from_fields({**body, "reference": key})
    except InvalidRequest as error:
        renamed = [FieldError(IDEMPOTENCY_KEY if e.field == "reference" else e.field, e.message) for e in error.errors]
        raise invalid(renamed) from None
    [intake] = enqueue_payments(_uow(), [message], _send, g.api_token.name)
    answer = outcome_json(intake.outcome)
    location = {"Location": url_for("api.get_payment", reference=message.reference)}
    if intake.conflict:
        detail = f"{IDEMPOTENCY_KEY} {message.reference} is recorded with another payload; its outcome stands"
        raise Problem(409, detail, CONFLICT, headers=location, outcome=answer)
    recorded = intake.outcome.status is not OutcomeStatus.PENDING
    return _json(answer, 200 if recorded else 202, location)


def _send(messages: Sequence[PaymentMessage]) -> None:
    client = _client()
    if len(messages) == 1:
        client.send_message(messages[0])
    else:
        client.send_batch(messages)


@api.post("/payment-batches")
@spec.validate(
    json=schemas.PaymentBatch,
    resp=Responses(HTTP_202=schemas.BatchOut, **PROBLEMS),
    skip_validation=True,
    tags=["payments"],
)
def post_batch() -> Response:
    """Enqueue up to 1,000 payments in one message, each under its own reference, with one line per payment.

    Nothing is sent when any payment is invalid: the 422 names each field as payments[INDEX].FIELD.
    """
    body = _body(frozenset({"payments"}))
    items = body.get("payments")
    if not isinstance(items, list) or not 1 <= len(items) <= BATCH_MAX:
        raise invalid([FieldError("payments", f"must be a list of 1 to {BATCH_MAX} payments")])
    messages: list[PaymentMessage] = []
    errors: list[FieldError] = []
    for index, item in enumerate(items):
        prefix = f"payments[{index}]."
        try:
            fields = _check_keys(dict(batch_item(item)), BATCH_FIELDS, prefix)
            messages.append(from_fields(fields))
        except Problem as problem:
            errors.extend(problem.errors)
        except InvalidRequest as error:
            errors.extend(FieldError(prefix + e.field, e.message) for e in error.errors)
    if errors:
        raise invalid(errors)
    intakes = enqueue_payments(_uow(), messages, _send, g.api_token.name)
    return _json({"payments": _answer(intakes)}, 202)


@api.get("/payments/<reference>")
@spec.validate(resp=Responses(HTTP_200=schemas.OutcomeOut, HTTP_404=schemas.Problem, **PROBLEMS), tags=["payments"])
def get_payment(reference: str) -> Response:
    """The outcome of a payment, with any conflicting attempts; 404 until a worker has recorded one."""
    outcome = get_outcome(_uow(), parse_reference(reference))
    if outcome.status is OutcomeStatus.PENDING:
        raise Problem(404, f"no outcome is recorded under {reference}: never sent, or still in the queue")
    return _json(outcome_json(outcome), 200)


@api.get("/accounts/<number>")
@spec.validate(resp=Responses(HTTP_200=schemas.AccountOut, HTTP_404=schemas.Problem, **PROBLEMS), tags=["accounts"])
def get_account(number: str) -> Response:
    """An account with its balance."""
    return _json(account_json(account_services.get_account(_uow(), number)), 200)


@api.get("/accounts/<number>/statement")
@spec.validate(
    query=schemas.StatementQuery,
    resp=Responses(HTTP_200=schemas.StatementOut, HTTP_404=schemas.Problem, **PROBLEMS),
    skip_validation=True,
    tags=["accounts"],
)
def get_statement(number: str) -> Response:
    """A page of an account's entries, oldest first; `next` is the cursor of the following page."""
    _check_keys(dict(request.args), frozenset({"from", "to", "cursor", "limit"}), "")
    limit = _limit(request.args.get("limit"))
    statement = reading.account_statement(
        _uow(),
        number,
        _moment("from", request.args.get("from")),
        _moment("to", request.args.get("to"), end=True),
        limit,
        request.args.get("cursor"),
    )
    return _json(statement_json(statement), 200)


def _limit(value: str | None) -> int:
    if value is None:
        return reading.DEFAULT_PAGE
    if not value.isascii() or not value.isdigit():
        raise InvalidValue("limit", "must be a whole number")
    return int(value)


def _moment(field: str, value: str | None, end: bool = False) -> datetime | None:
    """A date (its midnight; as `to`, the next one) or an RFC 3339 time, in PROCESSOR_TIMEZONE when it has no offset."""
    if value is None:
        return None
    try:
        moment: date = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
    except ValueError:
        raise InvalidValue(field, "must be a date (2026-12-01) or an RFC 3339 time") from None
    return in_zone(moment, get_settings().zone, end=end)


@spec.validate(resp=Responses(HTTP_200=schemas.Health, HTTP_503=schemas.Health), security={}, tags=["health"])
def healthz() -> Response:
    """The database and the broker both reachable: 200; otherwise 503, naming which is not (no auth)."""
    database = database_reachable(_uow())
    broker = _broker_reachable()
    ok = database and broker
    return _json({"status": "ok" if ok else "unavailable", "database": database, "broker": broker}, 200 if ok else 503)


def _broker_reachable() -> bool:
    try:
        with _client().app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=0, timeout=2)
    except (kombu.exceptions.OperationalError, OSError):
        return False
    return True
