"""The console in headless Chromium (Debian's chromium, driven by Playwright), served by a real HTTP server thread.

An operator logs in, finds an account, reads its statement and freezes it with a reason, and sees the audit entry
that names them; a viewer sees no form, and a POST they make anyway is refused. A screenshot of each page is
written under the test's temporary directory.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from werkzeug.serving import make_server

from processor.services.accounts import get_account
from tests.builders import UowFactory, make_account, make_customer, pay
from tests.console.conftest import PASSWORD, console_app, make_user
from tests.requests import deposit

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def base_url(make_uow: UowFactory, broker_url: str) -> Iterator[str]:
    # The settings' defaults, Secure cookie included: browsers send it to http://127.0.0.1 as to https.
    server = make_server("127.0.0.1", 0, console_app(broker_url), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # The system's browser: nothing is downloaded. No sandbox: CI runs as root, where Chromium's refuses.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def test_an_operator_freezes_an_account_and_a_viewer_cannot(
    make_uow: UowFactory, base_url: str, browser: Browser, tmp_path: Path
) -> None:
    owner = make_customer(make_uow, "Katherine Johnson")
    account = make_account(make_uow, customer=owner)
    pay(make_uow, deposit(account.number, "120.00", reference="salary-2026-11", description="<b>salary</b>"))
    operator, viewer = make_user(make_uow, "operator", "kjohnson"), make_user(make_uow, "viewer", "dvaughan")
    shots: list[str] = []

    def shot(page: Page, name: str) -> None:
        page.screenshot(path=tmp_path / f"{name}.png", full_page=True)
        shots.append(name)

    page = browser.new_page(viewport={"width": 1200, "height": 800})
    page.goto(f"{base_url}/login")
    shot(page, "login")
    log_in(page, base_url, operator.username)
    shot(page, "dashboard")

    page.get_by_role("link", name="Search").click()
    page.get_by_label("Name, email, customer or account number").fill("johnson")
    page.get_by_role("button", name="Search").click()
    shot(page, "search")
    page.get_by_role("link", name=str(owner.number)).click()
    shot(page, "customer")
    page.get_by_role("link", name=account.number).click()
    statement = page.locator("#statement")
    expect(statement).to_contain_text("salary-2026-11")
    expect(statement).to_contain_text("<b>salary</b>")  # the sender's markup shown as text
    expect(statement).to_contain_text("120.00")

    page.get_by_label("New status").select_option("frozen")
    page.get_by_label("Reason").fill("fraud report, case 7781")
    page.get_by_role("button", name="Change status").click()
    expect(page.get_by_role("status")).to_have_text(f"Account {account.number} is now frozen.")
    expect(page.locator("#account-status")).to_have_text("frozen")
    audit = page.locator("#audit tbody tr").first
    expect(audit).to_contain_text(operator.username)
    expect(audit).to_contain_text("account.status_changed")
    expect(audit).to_contain_text("reason=fraud report, case 7781")
    shot(page, "account")
    assert get_account(make_uow(), account.number).status == "frozen"

    page.get_by_role("link", name="salary-2026-11").click()
    expect(page.locator("#payment-status")).to_have_text("applied")
    shot(page, "payment")
    page.get_by_role("link", name="Held messages").click()
    shot(page, "held")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()

    log_in(page, base_url, viewer.username)
    page.goto(f"{base_url}/accounts/{account.number}")
    expect(page.locator("#statement")).to_contain_text("salary-2026-11")
    expect(page.get_by_role("button", name="Change status")).to_have_count(0)
    shot(page, "account-as-viewer")
    # The form a viewer is not shown, sent anyway from their page with their own session and CSRF token.
    page.evaluate(
        """([number]) => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = `/accounts/${number}/status`;
            const token = document.querySelector("input[name=csrf_token]").cloneNode();
            form.append(token);
            for (const [name, value] of [["status", "active"], ["reason", "viewer tries"]]) {
                const input = document.createElement("input");
                input.name = name;
                input.value = value;
                form.append(input);
            }
            document.body.append(form);
            form.submit();
        }""",
        [account.number],
    )
    expect(page.get_by_role("heading", name="Forbidden")).to_be_visible()
    shot(page, "refused")
    assert get_account(make_uow(), account.number).status == "frozen"
    page.close()

    assert all((tmp_path / f"{name}.png").stat().st_size > 0 for name in shots)
