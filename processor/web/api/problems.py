"""Errors as RFC 9457 problem details (application/problem+json), one entry per invalid field."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from flask import Response, json, request

from processor.domain.errors import FieldError

MEDIA_TYPE = "application/problem+json"
INVALID = "urn:abcbank:problem:invalid-request"
CONFLICT = "urn:abcbank:problem:idempotency-conflict"
UNAVAILABLE = "urn:abcbank:problem:unavailable"


class Problem(Exception):
    """An answer that is a problem: raised anywhere in a view, rendered by the blueprint's error handler."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        type: str = "about:blank",
        errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or HTTPStatus(status).phrase)
        self.status = status
        self.detail = detail
        self.type = type
        self.errors = list(errors)
        self.headers = headers or {}
        self.extensions = extensions

    def response(self) -> Response:
        body: dict[str, Any] = {
            "type": self.type,
            "title": HTTPStatus(self.status).phrase,
            "status": self.status,
            "instance": request.path,
        }
        if self.detail is not None:
            body["detail"] = self.detail
        if self.errors:
            body["errors"] = [{"field": e.field, "detail": e.message} for e in self.errors]
        body.update(self.extensions)
        return Response(json.dumps(body), self.status, headers=self.headers, mimetype=MEDIA_TYPE)


def invalid(errors: Sequence[FieldError]) -> Problem:
    count = len(errors)
    return Problem(422, f"{count} invalid field{'s' if count != 1 else ''}", INVALID, errors)
