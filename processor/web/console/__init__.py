"""The operator console: server-rendered pages over the same services as the operator CLI.

Logged-in users only (Flask-Login, passwords checked by processor.services.users); sessions are signed cookies
that end after PROCESSOR_WEB_SESSION_MINUTES without a request; every POST carries a CSRF token (Flask-WTF); login
attempts are rate-limited (Flask-Limiter). Viewers read; only operators see and may send the forms that change
things (a viewer's POST is refused with 403).
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import cast

from flask import Flask
from flask.typing import RouteCallable
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from processor.config import get_settings
from processor.logs import log_event
from processor.web.console import views


def _default(app: Flask, key: str, value: object) -> None:
    """Set `key` unless the factory's config set it (to other than Flask's default)."""
    if app.config.get(key) == app.default_config.get(key):
        app.config[key] = value


def register(app: Flask) -> None:
    """Add the console's blueprint at / with its session, cookie, CSRF and rate-limit settings."""
    settings = get_settings()
    if settings.web_secret_key is None:
        secret = secrets.token_urlsafe(32)
        log_event(
            "console.random_secret_key",
            logging.WARNING,
            note="PROCESSOR_WEB_SECRET_KEY is unset: sessions end when this process does, and are not shared",
        )
    else:
        secret = settings.web_secret_key.get_secret_value()
    # The app factory's config (tests, a deployment) wins over the environment; Flask's own defaults do not.
    _default(app, "SECRET_KEY", secret)
    _default(app, "PERMANENT_SESSION_LIFETIME", timedelta(minutes=settings.web_session_minutes))
    _default(app, "SESSION_COOKIE_NAME", "abcbank_console")
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    _default(app, "SESSION_COOKIE_SAMESITE", "Lax")
    _default(app, "SESSION_COOKIE_SECURE", settings.web_cookie_secure)
    # The session's cookie is sent again with every request, so its lifetime counts from the last one (idle).
    app.config["SESSION_REFRESH_EACH_REQUEST"] = True
    # CSRF is checked for the console's POSTs only (views.py), not the API's, whose clients send a bearer token.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    _default(app, "WTF_CSRF_TIME_LIMIT", None)  # a token lives as long as its session
    _default(app, "RATELIMIT_STORAGE_URI", settings.web_ratelimit_storage or settings.celery_broker_url)
    _default(app, "RATELIMIT_KEY_PREFIX", "abcbank-console")
    _default(app, "CONSOLE_LOGIN_RATE_LIMIT", settings.web_login_rate_limit)

    # One of each per application (the tests make several), none at import time.
    CSRFProtect(app)
    login_manager = LoginManager(app)
    login_manager.login_view = "console.login"
    login_manager.login_message = "Log in to see that page."
    login_manager.user_loader(views.load_user)
    app.register_blueprint(views.console)
    # No default limit, so the API is not counted by the console's limiter: only the login form's POSTs are.
    limiter = Limiter(get_remote_address, app=app, default_limits=[])
    endpoint = "console.login"
    limit = limiter.limit(lambda: str(app.config["CONSOLE_LOGIN_RATE_LIMIT"]), methods=["POST"])
    app.view_functions[endpoint] = cast(RouteCallable, limit(app.view_functions[endpoint]))
