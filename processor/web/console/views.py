"""The console's pages. Each view reads its input, calls a service and renders a template: no rule lives here."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import datetime, timedelta
from decimal import Decimal
from functools import wraps
from typing import Any, TypeVar, cast

import sqlalchemy
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask_login import UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError
from werkzeug.wrappers import Response as BaseResponse

from processor.bootstrap import unit_of_work
from processor.config import get_settings
from processor.domain.errors import InvalidValue, NotFound, ProcessorError
from processor.domain.money import format_amount
from processor.domain.users import User
from processor.logs import log_event
from processor.messages import PaymentMessage
from processor.presenters import STATEMENT_CSV_COLUMNS, statement_csv_row, transaction_detail_json
from processor.services import accounts as account_services
from processor.services import customers as customer_services
from processor.services import reading
from processor.services.held import held_page, resend_held, resolve_held
from processor.services.reversal import reverse_transaction
from processor.services.stats import outcome_stats
from processor.services.users import authenticate, get_user
from processor.times import format_time
from processor.web.console.forms import LoginForm, LogoutForm, ResendForm, ResolveForm, ReverseForm, StatusForm

console = Blueprint(
    "console", __name__, template_folder="templates", static_folder="static", static_url_path="/console-static"
)
F = TypeVar("F", bound=Callable[..., Any])


class ConsoleUser(UserMixin):
    """The logged-in user as Flask-Login sees them."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.id = user.id

    @property
    def username(self) -> str:
        return self.user.username

    @property
    def can_change(self) -> bool:
        return self.user.can_change


def load_user(user_id: str) -> ConsoleUser | None:
    """The session's user, read again on every request: a user removed from the table is logged out."""
    found = get_user(unit_of_work(), int(user_id)) if user_id.isdigit() else None
    return None if found is None else ConsoleUser(found)


def login_required(view: F) -> F:
    """Logged-in users only; anyone else is sent to the login page (Flask-Login's own decorator, typed)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
        return view(*args, **kwargs)

    return cast(F, wrapper)


def operator_required(view: F) -> F:
    """Only operators may send what changes things; a viewer who tries gets 403 (and never sees the form)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
        if not current_user.can_change:
            abort(403)
        return view(*args, **kwargs)

    return cast(F, wrapper)


def _page() -> int:
    return int(current_app.config.get("CONSOLE_PAGE_SIZE", 25))


def _actor() -> str:
    return str(current_user.username)


@console.before_request
def _check_csrf() -> None:
    # Every form of the console carries the token; a POST without a valid one is refused before any view runs.
    if request.method == "POST":
        current_app.extensions["csrf"].protect()


@console.after_request
def _headers(response: Response) -> Response:
    # No script, no frames, nothing from elsewhere; pages with account data are not kept in caches.
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
        " frame-ancestors 'none'; base-uri 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@console.app_context_processor
def _forms() -> dict[str, Any]:
    return {"logout_form": LogoutForm()}


@console.errorhandler(CSRFError)
def _csrf_refused(error: CSRFError) -> tuple[str, int]:
    return render_template("error.html", title="Refused", message=f"{error.description} Reload the page."), 400


@console.errorhandler(NotFound)
def _not_found(error: NotFound) -> tuple[str, int]:
    return render_template("error.html", title="Not found", message=str(error)), 404


@console.errorhandler(ProcessorError)
def _refused(error: ProcessorError) -> tuple[str, int]:
    return render_template("error.html", title="Refused", message=str(error)), 422


@console.errorhandler(sqlalchemy.exc.OperationalError)
def _unavailable(error: sqlalchemy.exc.OperationalError) -> tuple[str, int]:
    log_event("console.database_unavailable", error=type(error.orig).__name__)
    return render_template("error.html", title="Unavailable", message="The database cannot be reached."), 503


@console.errorhandler(403)
def _forbidden(error: Exception) -> tuple[str, int]:
    return render_template("error.html", title="Forbidden", message="Your role may not do this."), 403


@console.errorhandler(429)
def _too_many(error: Exception) -> tuple[str, int]:
    return render_template("error.html", title="Too many attempts", message="Wait a minute, then try again."), 429


def _done(message: str, endpoint: str, **values: Any) -> BaseResponse:
    flash(message, "done")
    return redirect(url_for(endpoint, **values), code=303)


def _form_errors(form: Any) -> str:
    return "; ".join(f"{name}: {', '.join(errors)}" for name, errors in form.errors.items())


@console.route("/login", methods=["GET", "POST"])
def login() -> str | BaseResponse | tuple[str, int]:
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(unit_of_work(), form.username.data or "", form.password.data or "")
        if user is None:
            log_event("console.login_refused", username=form.username.data, address=request.remote_addr)
            flash("Wrong username or password.", "error")
            return render_template("login.html", form=form), 401
        # A new session for a new login: nothing from before it (a planted session id, a stale flash) carries over.
        session.clear()
        session.permanent = True
        login_user(ConsoleUser(user))
        log_event("console.login", username=user.username, role=user.role, address=request.remote_addr)
        return redirect(url_for("console.dashboard"), code=303)
    return render_template("login.html", form=form)


@console.route("/logout", methods=["POST"])
def logout() -> BaseResponse:
    logout_user()
    session.clear()
    flash("Logged out.", "done")
    return redirect(url_for("console.login"), code=303)


@console.route("/")
@login_required
def dashboard() -> str:
    stats = outcome_stats(unit_of_work(), timedelta(hours=24))
    recent = reading.list_transactions(unit_of_work(), limit=_page())
    return render_template("dashboard.html", stats=stats, recent=recent.items)


@console.route("/search")
@login_required
def search() -> str:
    text = request.args.get("q", "").strip()
    account = None
    customers = []
    if text:
        try:
            account = account_services.get_account(unit_of_work(), text)
        except (InvalidValue, NotFound):
            account = None
        customers = reading.list_customers(unit_of_work(), text, _page()).items
    return render_template("search.html", q=text, account=account, customers=customers)


@console.route("/customers/<int:number>")
@login_required
def customer(number: int) -> str:
    found, accounts = customer_services.get_customer(unit_of_work(), number)
    return render_template("customer.html", customer=found, accounts=accounts)


@console.route("/accounts/<number>")
@login_required
def account(number: str) -> str:
    after = request.args.get("after") or None
    statement = reading.account_statement(unit_of_work(), number, limit=_page(), after=after)
    audit = reading.list_audit(unit_of_work(), account=statement.account.number, limit=_page()).items
    form = StatusForm(status=statement.account.status) if current_user.can_change else None
    return render_template("account.html", statement=statement, audit=audit, form=form, after=after)


@console.route("/accounts/<number>/statement.csv")
@login_required
def statement_csv(number: str) -> Response:
    stack = ExitStack()
    # Entered before the response starts, so that an unknown account is a 404 page, not a broken download.
    found, entries = stack.enter_context(reading.export_statement(unit_of_work(), number))

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        with stack:
            writer.writerow(STATEMENT_CSV_COLUMNS)
            for entry in entries:
                writer.writerow(statement_csv_row(entry))
                if buffer.tell() > 64 * 1024:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue()

    response = Response(stream_with_context(rows()), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="statement-{found.number}.csv"'
    response.call_on_close(stack.close)
    return response


@console.route("/accounts/<number>/status", methods=["POST"])
@operator_required
def change_status(number: str) -> BaseResponse:
    form = StatusForm()
    if not form.validate():
        flash(_form_errors(form), "error")
        return redirect(url_for("console.account", number=number), code=303)
    changed = account_services.change_status(
        unit_of_work(), number, form.status.data or "", form.reason.data or "", _actor()
    )
    return _done(f"Account {changed.number} is now {changed.status}.", "console.account", number=changed.number)


@console.route("/payments")
@login_required
def payment_search() -> BaseResponse | str:
    reference = request.args.get("reference", "").strip()
    if reference:
        return redirect(url_for("console.payment", reference=reference))
    return render_template("payment.html", data=None, form=None)


@console.route("/payments/<reference>")
@login_required
def payment(reference: str) -> str:
    data = transaction_detail_json(reading.show_transaction(unit_of_work(), reference))
    form = ReverseForm() if current_user.can_change and data["status"] == "applied" else None
    return render_template("payment.html", data=data, form=form)


@console.route("/payments/<reference>/reverse", methods=["POST"])
@operator_required
def reverse(reference: str) -> BaseResponse:
    form = ReverseForm()
    if not form.validate():
        flash(_form_errors(form), "error")
        return redirect(url_for("console.payment", reference=reference), code=303)
    outcome = reverse_transaction(unit_of_work(), reference, form.reason.data or "", _actor(), get_settings().policy())
    if outcome.reason is not None:
        flash(
            f"Reversal {outcome.reference} was rejected ({outcome.reason}) and recorded; {reference} stands.",
            "error",
        )
        return redirect(url_for("console.payment", reference=reference), code=303)
    return _done(f"{reference} reversed by {outcome.reference}.", "console.payment", reference=reference)


@console.route("/held")
@login_required
def held() -> str:
    include_resolved = request.args.get("all") == "1"
    page = held_page(unit_of_work(), include_resolved, _page(), request.args.get("after") or None)
    can_change = current_user.can_change
    return render_template(
        "held.html",
        page=page,
        include_resolved=include_resolved,
        resend_form=ResendForm() if can_change else None,
        resolve_form=ResolveForm() if can_change else None,
    )


def _send(message: PaymentMessage) -> None:
    # The producer's own client, as `processor held resend` uses: the same validation and errors as `submit`.
    from submit.client import Client

    Client().send_message(message)


@console.route("/held/<int:held_id>/resend", methods=["POST"])
@operator_required
def resend(held_id: int) -> BaseResponse:
    done = resend_held(unit_of_work(), held_id, _actor(), _send)
    if not done.sent:
        flash(f"Nothing sent: {done.reference} has an outcome already ({done.outcome.status}); resolve it.", "error")
        return redirect(url_for("console.held"), code=303)
    return _done(f"Held message {held_id} sent again as {done.reference}.", "console.held")


@console.route("/held/<int:held_id>/resolve", methods=["POST"])
@operator_required
def resolve(held_id: int) -> BaseResponse:
    form = ResolveForm()
    if not form.validate():
        flash(_form_errors(form), "error")
        return redirect(url_for("console.held"), code=303)
    resolve_held(unit_of_work(), held_id, form.reason.data or "", _actor())
    return _done(f"Held message {held_id} resolved.", "console.held")


@console.app_template_filter("money")
def _money(amount: Decimal | None) -> str:
    return "" if amount is None else format_amount(amount)


@console.app_template_filter("moment")
def _moment(at: datetime | None) -> str:
    return "" if at is None else format_time(at, "seconds")
