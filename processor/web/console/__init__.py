"""Placeholder: registers nothing yet."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Add this front end's blueprint to the application."""
