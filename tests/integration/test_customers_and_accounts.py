from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy

from processor.domain.accounts import SETTLEMENT_SLOTS
from processor.domain.errors import (
    CustomerNotFound,
    DuplicateEmail,
    InvalidStatusChange,
    InvalidValue,
    UnsupportedCurrency,
)
from processor.services.accounts import change_status, get_account, open_account
from processor.services.customers import get_customer, register_customer
from tests.builders import UowFactory, make_account, make_customer, pay
from tests.clis import mistype
from tests.requests import withdrawal

CURRENCIES = ["GBP", "EUR"]


class TestRegisterCustomer:
    def test_customers_get_increasing_numbers(self, make_uow: UowFactory) -> None:
        first = register_customer(make_uow(), "Ada Lovelace", "ada@example.com", "ops")
        second = register_customer(make_uow(), "Alan Turing", "alan@example.com", "ops")
        assert second.number > first.number

    def test_email_is_unique_whatever_its_case(self, make_uow: UowFactory) -> None:
        register_customer(make_uow(), "Ada Lovelace", "ada@example.com", "ops")
        with pytest.raises(DuplicateEmail, match=r"ada@example\.com"):
            register_customer(make_uow(), "Ada Again", "ADA@Example.COM", "ops")

    def test_registration_is_audited(self, make_uow: UowFactory) -> None:
        customer = register_customer(make_uow(), "Ada Lovelace", "ada@example.com", "alice")
        with make_uow() as uow:
            (entry,) = uow.audit.for_entity("customer", str(customer.number))
        assert (entry.actor, entry.action) == ("alice", "customer.registered")

    def test_show_lists_the_customers_accounts(self, make_uow: UowFactory) -> None:
        customer = make_customer(make_uow)
        opened = make_account(make_uow, customer=customer)
        found, accounts = get_customer(make_uow(), customer.number)
        assert found == customer
        assert [a.number for a in accounts] == [opened.number]

    def test_unknown_customer_is_not_found(self, make_uow: UowFactory) -> None:
        with pytest.raises(CustomerNotFound):
            get_customer(make_uow(), 1)


class TestOpenAccount:
    @pytest.mark.parametrize("type", ["standard", "savings", "reward"])
    def test_opens_each_type_active_and_empty(self, make_uow: UowFactory, type: str) -> None:
        customer = make_customer(make_uow)
        account = open_account(make_uow(), customer.number, type, "GBP", "ops", CURRENCIES)
        assert (account.type, account.status, account.balance, account.customer) == (
            type,
            "active",
            Decimal("0.00"),
            customer.number,
        )

    def test_settlement_accounts_per_currency_are_made_with_its_first_account(self, make_uow: UowFactory) -> None:
        customer = make_customer(make_uow)
        for currency in ("GBP", "GBP", "EUR"):
            open_account(make_uow(), customer.number, "standard", currency, "ops", CURRENCIES)
        with make_uow() as uow:
            rows = uow.session.execute(
                sqlalchemy.text(
                    "SELECT currency, settlement_slot FROM accounts WHERE type = 'settlement'"
                    " ORDER BY currency, settlement_slot"
                )
            ).all()
        assert [tuple(r) for r in rows] == [(c, slot) for c in ("EUR", "GBP") for slot in range(SETTLEMENT_SLOTS)]

    def test_overdraft_limit_is_for_standard_accounts_only(self, make_uow: UowFactory) -> None:
        customer = make_customer(make_uow)
        with pytest.raises(InvalidValue, match="overdraft_limit"):
            open_account(make_uow(), customer.number, "savings", "GBP", "ops", CURRENCIES, "100")

    def test_unsupported_currency_is_refused(self, make_uow: UowFactory) -> None:
        customer = make_customer(make_uow)
        with pytest.raises(UnsupportedCurrency, match="JPY"):
            open_account(make_uow(), customer.number, "standard", "JPY", "ops", CURRENCIES)

    def test_unknown_customer_is_refused(self, make_uow: UowFactory) -> None:
        with pytest.raises(CustomerNotFound):
            open_account(make_uow(), 42, "standard", "GBP", "ops", CURRENCIES)

    def test_mistyped_account_number_is_refused_before_lookup(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        mistyped = mistype(account.number)
        with pytest.raises(InvalidValue, match="check digit"):
            get_account(make_uow(), mistyped)


class TestChangeStatus:
    def test_change_is_audited_with_who_when_from_to_and_why(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        change_status(make_uow(), account.number, "frozen", "suspected fraud", "alice")
        with make_uow() as uow:
            entries = uow.audit.for_entity("account", account.number)
        change = entries[-1]
        assert change.action == "account.status_changed"
        assert change.actor == "alice"
        assert change.at is not None
        assert change.details == {"from": "active", "to": "frozen", "reason": "suspected fraud"}
        assert get_account(make_uow(), account.number).status == "frozen"

    def test_a_reason_is_required(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        with pytest.raises(InvalidValue, match="reason"):
            change_status(make_uow(), account.number, "frozen", "  ", "alice")

    def test_closing_needs_a_zero_balance(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow, balance="10.00")
        with pytest.raises(InvalidStatusChange, match="zero balance"):
            change_status(make_uow(), account.number, "closed", "customer left", "alice")
        pay(make_uow, withdrawal(account.number, "10.00"))
        assert change_status(make_uow(), account.number, "closed", "customer left", "alice").status == "closed"

    def test_closed_is_final(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow, status="closed")
        with pytest.raises(InvalidStatusChange, match="final"):
            change_status(make_uow(), account.number, "active", "changed my mind", "alice")

    def test_refused_change_leaves_status_and_audit_untouched(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow, status="dormant")
        with pytest.raises(InvalidStatusChange, match="allowed: active, closed, frozen"):
            change_status(make_uow(), account.number, "outgoing_blocked", "hold", "alice")
        with make_uow() as uow:
            actions = [e.details.get("to") for e in uow.audit.for_entity("account", account.number)]
        assert actions == [None, "dormant"]
        assert get_account(make_uow(), account.number).status == "dormant"

    def test_settlement_accounts_cannot_change_status(self, make_uow: UowFactory) -> None:
        make_account(make_uow)
        with make_uow() as uow:
            number = uow.session.scalar(sqlalchemy.text("SELECT number FROM accounts WHERE type = 'settlement'"))
        with pytest.raises(InvalidStatusChange, match="settlement account"):
            change_status(make_uow(), number, "frozen", "no", "alice")
