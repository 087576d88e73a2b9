"""The API's bodies and answers as the OpenAPI document shows them.

These models document; they do not validate. A request body is checked by processor.messages (from_fields), the
worker's own models, so the API accepts exactly what a worker would apply; the field types here are those models'
own annotated types, so the document's patterns are theirs too.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from processor.domain.pages import MAX_PAGE
from processor.messages import BATCH_MAX, AccountNumber, Amount, Currency, Description, Reference

PaymentType = Literal["deposit", "withdrawal", "transfer"]


class Payment(BaseModel):
    """A payment in the domain's shape: a deposit names a destination, a withdrawal a source, a transfer both."""

    model_config = ConfigDict(extra="forbid")

    type: PaymentType
    source: AccountNumber | None = None
    destination: AccountNumber | None = None
    amount: Amount
    currency: Currency
    description: Description = None


class BatchPayment(Payment):
    """A payment of a batch: it carries its own reference, its idempotency key."""

    reference: Reference


class PaymentBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payments: list[BatchPayment] = Field(min_length=1, max_length=BATCH_MAX)


class IdempotencyKey(BaseModel):
    """The payment's reference: the same key and body again apply once; another body under it is refused (409)."""

    idempotency_key: Reference = Field(alias="Idempotency-Key")


class ConflictOut(BaseModel):
    fields: list[str]
    payload: dict[str, object]
    at: str | None


class OutcomeOut(BaseModel):
    """The outcome shape of ARCHITECTURE section 9: pending until a worker records applied or rejected."""

    reference: str
    status: Literal["applied", "rejected", "pending"]
    reason: str | None
    type: str | None
    amount: str | None
    currency: str | None
    source: str | None
    destination: str | None
    errors: list[str]
    delivery: str
    conflicts: list[ConflictOut]


class BatchOut(BaseModel):
    payments: list[OutcomeOut]


class AccountOut(BaseModel):
    number: str
    customer: int | None
    type: str
    status: str
    currency: str
    balance: str
    overdraft_limit: str
    reward_points: int


class StatementEntryOut(BaseModel):
    reference: str
    amount: str
    balance_after: str
    at: str
    type: str | None
    counterparty: str | None
    description: str | None
    reverses: str | None


class StatementOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    account: str
    currency: str
    start: str | None = Field(alias="from")
    end: str | None = Field(alias="to")
    opening_balance: str
    closing_balance: str
    items: list[StatementEntryOut]
    next: str | None = Field(description="The cursor of the next page (pass it as `cursor`), null on the last")


class StatementQuery(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    start: str | None = Field(None, alias="from", description="A date or an RFC 3339 time: entries from it on")
    end: str | None = Field(None, alias="to", description="A date (that whole day) or an RFC 3339 time: before it")
    cursor: str | None = Field(None, description="The `next` of the previous page")
    limit: int | None = Field(None, ge=1, le=MAX_PAGE, description="Entries on this page")


class FieldProblem(BaseModel):
    field: str = Field(description="The body's field, or the header or query parameter, that is invalid")
    detail: str


class Problem(BaseModel):
    """RFC 9457 problem details (application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldProblem] | None = Field(None, description="One entry per invalid field (422)")


class ConflictProblem(Problem):
    outcome: OutcomeOut = Field(description="The outcome recorded under this key, which stands")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: bool
    broker: bool
