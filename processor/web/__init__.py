"""The web front ends: an HTTP API for upstream systems (processor.web.api) and a console for operators
(processor.web.console), one Flask application over the same services as the CLIs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The Flask application: the API under /api/v1, the console under /, and /healthz."""
    app = Flask(__name__)
    # A batch of 1,000 payments with the longest descriptions is well under this; anything larger is refused (413)
    # before it is read.
    app.config["MAX_CONTENT_LENGTH"] = 4 * 1024 * 1024
    if config:
        app.config.update(config)
    from processor.web import api, console

    api.register(app)
    console.register(app)
    return app
