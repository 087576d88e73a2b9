"""What decides: the posting rules that move money between the accounts a batch holds locked."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import Decimal

from processor.domain.accounts import Account, AccountStatus, AccountType
from processor.domain.outcomes import Reason
from processor.domain.requests import PaymentRequest, PaymentType


def month_start(moment: datetime, zone: tzinfo) -> datetime:
    """The start of the calendar month, in `zone`, that a moment falls in."""
    # replace() keeps the zone and takes the offset in force at midnight on the 1st, not the one at `moment`.
    return moment.astimezone(zone).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Policy:
    savings_monthly_outgoing_limit: int = 6
    reward_points_per_unit: int = 1
    reward_unit: Decimal = Decimal("10.00")
    # The zone whose calendar month the savings limit counts in (PROCESSOR_TIMEZONE).
    zone: tzinfo = UTC

    def reward_points(self, amount: Decimal) -> int:
        return int(amount // self.reward_unit) * self.reward_points_per_unit


@dataclass(frozen=True)
class Posting:
    account_id: int
    amount: Decimal
    balance_after: Decimal


@dataclass(frozen=True)
class Decision:
    reason: Reason | None
    postings: tuple[Posting, ...] = ()

    @property
    def applied(self) -> bool:
        return self.reason is None


@dataclass
class Book:
    """The accounts a batch holds locked, and the rules that move money between them, checked in memory."""

    accounts: dict[str, Account]
    settlement: dict[tuple[str, int], Account]
    outgoing_this_month: dict[int, int]
    policy: Policy = field(default_factory=Policy)
    changed: dict[int, Account] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        accounts: Iterable[Account],
        outgoing_this_month: Mapping[int, int],
        policy: Policy,
    ) -> Book:
        customer_accounts: dict[str, Account] = {}
        settlement: dict[tuple[str, int], Account] = {}
        for account in accounts:
            if account.type is AccountType.SETTLEMENT:
                settlement[account.currency, account.settlement_slot] = account
            else:
                customer_accounts[account.number] = account
        return cls(customer_accounts, settlement, dict(outgoing_this_month), policy)

    def account_id(self, number: str | None) -> int | None:
        account = self.accounts.get(number) if number else None
        return None if account is None else account.id

    def apply(self, request: PaymentRequest) -> Decision:
        source = self.accounts.get(request.source) if request.source else None
        destination = self.accounts.get(request.destination) if request.destination else None
        reason = self._reason(request, source, destination)
        if reason is not None:
            return Decision(reason)
        settlement = self.settlement.get(request.settlement) if request.settlement else None
        debit = source or settlement
        credit = destination or settlement
        if debit is None or credit is None:
            raise LookupError(f"{request.reference}: a side of the payment has no account")  # _reason rules it out
        debit.balance -= request.amount
        credit.balance += request.amount
        if source is not None and source.type is AccountType.SAVINGS:
            self.outgoing_this_month[source.id] = self.outgoing_this_month.get(source.id, 0) + 1
        # A reversal gives back money that was there already: it earns no points (nor takes back those earned).
        if request.type is PaymentType.DEPOSIT and credit.type is AccountType.REWARD and request.reverses is None:
            credit.reward_points += self.policy.reward_points(request.amount)
        self.changed[debit.id] = debit
        self.changed[credit.id] = credit
        return Decision(
            None,
            (
                Posting(debit.id, -request.amount, debit.balance),
                Posting(credit.id, request.amount, credit.balance),
            ),
        )

    def _reason(self, request: PaymentRequest, source: Account | None, destination: Account | None) -> Reason | None:
        if request.source is not None and request.source == request.destination:
            return Reason.SAME_ACCOUNT
        touched = [a for a in (source, destination) if a is not None]
        if len(touched) != len(request.accounts):
            return Reason.ACCOUNT_NOT_FOUND
        if any(a.currency != request.currency for a in touched):
            return Reason.CURRENCY_MISMATCH
        if request.settlement is not None and request.settlement not in self.settlement:
            # An account in this currency exists, so its settlement accounts do too; not locking one is a bug.
            currency, slot = request.settlement
            raise LookupError(f"settlement account {slot} for {currency} was not locked")
        if any(a.status is AccountStatus.CLOSED for a in touched):
            return Reason.ACCOUNT_CLOSED
        if source is not None and not source.status.allows_outgoing:
            return Reason.OUTGOING_BLOCKED
        if destination is not None and not destination.status.accepts_incoming:
            return Reason.INCOMING_BLOCKED
        if (
            source is not None
            and source.type is AccountType.SAVINGS
            and self.outgoing_this_month.get(source.id, 0) >= self.policy.savings_monthly_outgoing_limit
        ):
            return Reason.WITHDRAWAL_LIMIT_REACHED
        if source is not None and not source.can_pay(request.amount):
            return Reason.INSUFFICIENT_FUNDS
        return None
