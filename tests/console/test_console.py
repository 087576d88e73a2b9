"""The console through Flask's test client, on the real database: login, sessions, CSRF, roles, every page."""

from __future__ import annotations

import csv
import io
import time
from datetime import timedelta

import pytest
from flask.testing import FlaskClient

from processor.domain.held import HeldMessage, HeldReason
from processor.domain.records import AuditEntry
from processor.services.accounts import get_account
from processor.services.held import hold_message, list_held
from processor.services.reading import list_audit, show_transaction
from tests.builders import UowFactory, make_account, make_customer, pay
from tests.console.conftest import PASSWORD, console_app, csrf_token, log_in, make_user, text
from tests.requests import deposit, transfer

ERROR = "reference: '<img src=x onerror=alert(1)>' is not 1 to 64 characters"


def audit_of(make_uow: UowFactory, account: str) -> list[AuditEntry]:
    return list(list_audit(make_uow(), account=account).items)


class TestLogin:
    def test_a_page_without_a_session_sends_to_the_login_page(self, client: FlaskClient) -> None:
        response = client.get("/accounts/100000011")

        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")

    def test_the_right_password_opens_the_dashboard(self, make_uow: UowFactory, client: FlaskClient) -> None:
        user = make_user(make_uow, "viewer")

        response = log_in(client, user)

        assert (response.status_code, response.headers["Location"]) == (303, "/")
        page = client.get("/")
        assert page.status_code == 200
        assert f"{user.username} (viewer)" in text(page)

    @pytest.mark.parametrize("wrong", ["username", "password"])
    def test_a_wrong_username_or_password_is_the_same_refusal(
        self, make_uow: UowFactory, client: FlaskClient, wrong: str
    ) -> None:
        user = make_user(make_uow)
        token = csrf_token(client.get("/login"))
        data = {"username": user.username, "password": PASSWORD, "csrf_token": token}
        data[wrong] = "nobody-at-all" if wrong == "username" else PASSWORD + "x"

        response = client.post("/login", data=data)

        assert response.status_code == 401
        assert "Wrong username or password." in text(response)
        assert client.get("/").status_code == 302

    def test_the_session_cookie_is_http_only_same_site_lax_and_secure(
        self, make_uow: UowFactory, client: FlaskClient
    ) -> None:
        response = log_in(client, make_user(make_uow))

        cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("abcbank_console="))
        assert {"HttpOnly", "Secure", "SameSite=Lax"} <= {part.strip() for part in cookie.split(";")}

    def test_a_session_ends_after_its_idle_lifetime(self, make_uow: UowFactory, broker_url: str) -> None:
        # The signed cookie's age is counted in whole seconds: older than 1 s is expired.
        client = console_app(broker_url, PERMANENT_SESSION_LIFETIME=timedelta(seconds=1)).test_client()
        log_in(client, make_user(make_uow))
        time.sleep(0.5)
        assert client.get("/").status_code == 200  # a request within the lifetime renews it

        time.sleep(2.1)

        response = client.get("/")
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")

    def test_logging_out_ends_the_session(self, make_uow: UowFactory, client: FlaskClient) -> None:
        log_in(client, make_user(make_uow))

        response = client.post("/logout", data={"csrf_token": csrf_token(client.get("/"))})

        assert response.status_code == 303
        assert client.get("/").status_code == 302

    def test_login_attempts_beyond_the_limit_are_refused_even_with_the_right_password(
        self, make_uow: UowFactory, broker_url: str
    ) -> None:
        client = console_app(broker_url, CONSOLE_LOGIN_RATE_LIMIT="3 per minute").test_client()
        user = make_user(make_uow)
        for _ in range(3):
            assert log_in(client, user, "a wrong password").status_code == 401

        response = log_in(client, user)

        assert response.status_code == 429
        assert client.get("/").status_code == 302

    def test_a_login_without_its_csrf_token_is_refused(self, make_uow: UowFactory, client: FlaskClient) -> None:
        user = make_user(make_uow)

        response = client.post("/login", data={"username": user.username, "password": PASSWORD})

        assert response.status_code == 400
        assert "CSRF token is missing" in text(response)
        assert client.get("/").status_code == 302


class TestStatusChange:
    def test_an_operator_freezes_an_account_with_a_reason_and_the_audit_names_them(
        self, make_uow: UowFactory, client: FlaskClient
    ) -> None:
        account = make_account(make_uow, balance="10.00")
        user = make_user(make_uow, "operator")
        log_in(client, user)
        token = csrf_token(client.get(f"/accounts/{account.number}"))

        response = client.post(
            f"/accounts/{account.number}/status",
            data={"status": "frozen", "reason": "case 7781", "csrf_token": token},
        )

        assert response.status_code == 303
        assert get_account(make_uow(), account.number).status == "frozen"
        (entry, *_) = audit_of(make_uow, account.number)
        assert (entry.actor, entry.action, entry.details["reason"], entry.details["to"]) == (
            user.username,
            "account.status_changed",
            "case 7781",
            "frozen",
        )
        page = text(client.get(f"/accounts/{account.number}"))
        assert f"Account {account.number} is now frozen." in page
        assert f"<td>{user.username}</td><td>account.status_changed</td>" in page

    def test_without_a_reason_nothing_changes(self, make_uow: UowFactory, client: FlaskClient) -> None:
        account = make_account(make_uow)
        log_in(client, make_user(make_uow, "operator"))
        token = csrf_token(client.get(f"/accounts/{account.number}"))

        client.post(f"/accounts/{account.number}/status", data={"status": "frozen", "reason": "", "csrf_token": token})

        assert get_account(make_uow(), account.number).status == "active"
        assert "say why" in text(client.get(f"/accounts/{account.number}"))

    def test_a_post_without_the_csrf_token_is_refused(self, make_uow: UowFactory, client: FlaskClient) -> None:
        account = make_account(make_uow)
        log_in(client, make_user(make_uow, "operator"))

        response = client.post(f"/accounts/{account.number}/status", data={"status": "frozen", "reason": "x"})

        assert response.status_code == 400
        assert get_account(make_uow(), account.number).status == "active"

    def test_a_post_with_another_sessions_token_is_refused(
        self, make_uow: UowFactory, app: object, client: FlaskClient
    ) -> None:
        account = make_account(make_uow)
        log_in(client, make_user(make_uow, "operator"))
        other = client.application.test_client()
        log_in(other, make_user(make_uow, "operator"))
        foreign = csrf_token(other.get(f"/accounts/{account.number}"))

        response = client.post(
            f"/accounts/{account.number}/status", data={"status": "frozen", "reason": "x", "csrf_token": foreign}
        )

        assert response.status_code == 400
        assert get_account(make_uow(), account.number).status == "active"

    def test_a_viewer_sees_no_form_and_is_refused_with_403(self, make_uow: UowFactory, client: FlaskClient) -> None:
        account = make_account(make_uow)
        log_in(client, make_user(make_uow, "viewer"))
        page = client.get(f"/accounts/{account.number}")
        assert "Change status" not in text(page)

        response = client.post(
            f"/accounts/{account.number}/status",
            data={"status": "frozen", "reason": "x", "csrf_token": csrf_token(page)},
        )

        assert response.status_code == 403
        assert get_account(make_uow(), account.number).status == "active"
        assert [e.action for e in audit_of(make_uow, account.number)] == ["account.opened"]

    def test_a_change_the_rules_refuse_is_shown_and_nothing_changes(
        self, make_uow: UowFactory, client: FlaskClient
    ) -> None:
        account = make_account(make_uow, status="closed")
        log_in(client, make_user(make_uow, "operator"))
        token = csrf_token(client.get(f"/accounts/{account.number}"))

        response = client.post(
            f"/accounts/{account.number}/status", data={"status": "active", "reason": "oops", "csrf_token": token}
        )

        assert response.status_code == 422
        assert get_account(make_uow(), account.number).status == "closed"


class TestPages:
    def test_search_finds_customers_by_name_and_an_account_by_number(
        self, make_uow: UowFactory, client: FlaskClient
    ) -> None:
        owner = make_customer(make_uow, "Grace Hopper")
        account = make_account(make_uow, customer=owner)
        log_in(client, make_user(make_uow, "viewer"))

        by_name = text(client.get("/search", query_string={"q": "hopper"}))
        by_number = text(client.get("/search", query_string={"q": account.number}))
        customer = text(client.get(f"/customers/{owner.number}"))

        assert f'href="/customers/{owner.number}"' in by_name
        assert "Grace Hopper" in by_name
        assert f'href="/accounts/{account.number}"' in by_number
        assert f'href="/accounts/{account.number}"' in customer

    def test_the_statement_is_paged_by_its_next_cursor(self, make_uow: UowFactory, broker_url: str) -> None:
        client = console_app(broker_url, CONSOLE_PAGE_SIZE=2).test_client()
        account = make_account(make_uow)
        for n, amount in enumerate(["1.00", "2.00", "3.00"]):
            pay(make_uow, deposit(account.number, amount, reference=f"page-{n}-{account.number}"))
        log_in(client, make_user(make_uow, "viewer"))

        first = text(client.get(f"/accounts/{account.number}"))
        assert "page-0-" in first
        assert "page-1-" in first
        assert "page-2-" not in first
        after = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
        second = text(client.get(after))

        assert "page-2-" in second
        assert "page-0-" not in second
        assert 'rel="next"' not in second

    def test_the_csv_download_is_the_whole_statement_with_formulas_defused(
        self, make_uow: UowFactory, client: FlaskClient
    ) -> None:
        account = make_account(make_uow)
        pay(make_uow, deposit(account.number, "5.00", reference="csv-1", description="=HYPERLINK(1)"))
        pay(make_uow, deposit(account.number, "2.50", reference="csv-2"))
        log_in(client, make_user(make_uow, "viewer"))

        response = client.get(f"/accounts/{account.number}/statement.csv")

        assert response.mimetype == "text/csv"
        assert f"statement-{account.number}.csv" in response.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(text(response))))
        assert [(r["reference"], r["amount"], r["balance_after"]) for r in rows] == [
            ("csv-1", "5.00", "5.00"),
            ("csv-2", "2.50", "7.50"),
        ]
        assert rows[0]["description"] == "'=HYPERLINK(1)"

    def test_an_unknown_account_is_a_404_page(self, make_uow: UowFactory, client: FlaskClient) -> None:
        log_in(client, make_user(make_uow, "viewer"))
        unknown = make_account(make_uow).number[:-1]

        for path in (f"/accounts/{unknown}", f"/accounts/{unknown}/statement.csv"):
            response = client.get(path)
            assert response.status_code in (404, 422), path
            assert "Traceback" not in text(response)

    def test_a_payment_shows_its_conflicts_and_an_operator_reverses_it(
        self, make_uow: UowFactory, client: FlaskClient
    ) -> None:
        a, b = make_account(make_uow, balance="50.00"), make_account(make_uow)
        pay(make_uow, transfer(a, b, "20.00", reference="pay-1"))
        pay(make_uow, transfer(a, b, "21.00", reference="pay-1"))
        user = make_user(make_uow, "operator")
        log_in(client, user)

        page = client.get("/payments/pay-1")
        assert "amount" in text(page).split("Conflicting attempts")[1]
        assert '"21.00"' in text(page).replace("&#34;", '"')
        response = client.post("/payments/pay-1/reverse", data={"reason": "paid twice", "csrf_token": csrf_token(page)})

        assert response.status_code == 303
        reversed_by = show_transaction(make_uow(), "pay-1").reversed_by
        assert reversed_by is not None
        assert get_account(make_uow(), a.number).balance == 50
        assert f"pay-1 reversed by {reversed_by}" in text(client.get("/payments/pay-1"))

    def test_a_viewer_cannot_reverse(self, make_uow: UowFactory, client: FlaskClient) -> None:
        a, b = make_account(make_uow, balance="50.00"), make_account(make_uow)
        pay(make_uow, transfer(a, b, "20.00", reference="pay-2"))
        log_in(client, make_user(make_uow, "viewer"))
        page = client.get("/payments/pay-2")
        assert "Reverse this payment" not in text(page)

        response = client.post("/payments/pay-2/reverse", data={"reason": "x", "csrf_token": csrf_token(page)})

        assert response.status_code == 403
        assert show_transaction(make_uow(), "pay-2").reversed_by is None

    def test_held_messages_are_shown_escaped_and_an_operator_resolves_and_resends(
        self, make_uow: UowFactory, client: FlaskClient
    ) -> None:
        junk = hold_message(
            make_uow(),
            HeldMessage.of(
                HeldReason.UNREADABLE, "payments.deposit", "t-1", (), {"reference": "<script>alert(1)</script>"}, ERROR
            ),
        )
        account = make_account(make_uow)
        resendable = hold_message(
            make_uow(),
            HeldMessage.of(
                HeldReason.RETRIES_SPENT,
                "payments.deposit",
                "t-2",
                (),
                {"reference": "held-ok-1", "account": account.number, "amount": "1.00", "currency": "GBP"},
                "gave up",
            ),
        )
        log_in(client, make_user(make_uow, "operator"))
        page = client.get("/held")
        body = text(page)
        # What a sender wrote is text: the message as escaped JSON, the error (which quotes it) escaped by Jinja.
        assert "<script>" not in body
        assert "<img" not in body
        assert "\\u003cscript\\u003e" in body
        assert "&lt;img src=x onerror=alert(1)&gt;" in body
        token = csrf_token(page)

        resolved = client.post(f"/held/{junk}/resolve", data={"reason": "sender told", "csrf_token": token})
        resent = client.post(f"/held/{resendable}/resend", data={"csrf_token": token})

        assert (resolved.status_code, resent.status_code) == (303, 303)
        state = {m.id: m for m in list_held(make_uow())}
        assert state[junk].resolved_by is not None
        assert state[junk].resolution == "sender told"
        assert state[resendable].resends == 1

    def test_a_viewer_sees_held_messages_without_actions(self, make_uow: UowFactory, client: FlaskClient) -> None:
        held_id = hold_message(
            make_uow(), HeldMessage.of(HeldReason.FAILED, "payments.deposit", "t-3", (), {"reference": "r-3"}, "x")
        )
        log_in(client, make_user(make_uow, "viewer"))
        page = client.get("/held")
        assert "r-3" in text(page)
        assert "/resolve" not in text(page)
        assert "/resend" not in text(page)

        response = client.post(f"/held/{held_id}/resolve", data={"reason": "x", "csrf_token": csrf_token(page)})

        assert response.status_code == 403
        assert list_held(make_uow())[0].resolved_at is None

    def test_the_dashboard_counts_outcomes_and_held_messages(self, make_uow: UowFactory, client: FlaskClient) -> None:
        account = make_account(make_uow, balance="1.00")
        pay(make_uow, deposit(account.number, "1.00", reference="dash-1"))
        hold_message(make_uow(), HeldMessage.of(HeldReason.FAILED, "payments.deposit", "t-4", (), {}, "x"))
        log_in(client, make_user(make_uow, "viewer"))

        page = text(client.get("/"))

        assert "dash-1" in page
        assert '<a href="/held">1</a>' in page


class TestRefusals:
    def test_too_many_logins_is_a_console_page(self, make_uow: UowFactory, broker_url: str) -> None:
        client = console_app(broker_url, CONSOLE_LOGIN_RATE_LIMIT="1 per minute").test_client()
        user = make_user(make_uow, "viewer")
        log_in(client, user, "wrong")

        limited = log_in(client, user)

        assert limited.status_code == 429
        assert "Too many attempts" in text(limited)
        assert limited.headers["Content-Security-Policy"].startswith("default-src 'none'")
