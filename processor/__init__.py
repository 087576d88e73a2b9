"""ABC Bank transaction processor."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # `celery -A processor` finds the app here. It is loaded on first use, so the operator CLI and the domain do
    # not pay for importing Celery.
    if name in ("app", "celery_app"):
        from processor.celery import app

        return app
    raise AttributeError(f"module 'processor' has no attribute {name!r}")
