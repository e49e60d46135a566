"""The OpenAPI document as the API really answers.

FastAPI describes an error response's model under ``application/json`` and adds its own
422 (``HTTPValidationError``), while every error here is RFC 9457 problem JSON
(``application/problem+json``, error_handlers.py). A client generated from the document,
or a schema checker (the tests run Schemathesis), would then expect bodies the API never
sends. So the document is rewritten once, when first asked for:

- every error response declared as problem JSON, and FastAPI's own 422, has the
  ``Problem`` schema under ``application/problem+json`` (and nothing else);
- every operation that needs a bearer token documents 401 (no, an unknown, revoked or
  expired token) and 403 (the token's role or scopes do not allow it);
- every operation taking parameters or a body documents 422 (a value it cannot take),
  one taking a body 400 as well (a body that does not parse as JSON),
  and every one with a path parameter 404 (nothing has that id), because the app answers
  them there, whether or not a router remembered to say so.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI

from pbx_bridge.web.api_models import Problem
from pbx_bridge.web.problems import MEDIA_TYPE

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
METHODS = ("get", "head", "post", "put", "patch", "delete")


def _problem(status: int, description: str | None = None) -> dict[str, Any]:
    return {
        "description": description or HTTPStatus(status).phrase,
        "content": {MEDIA_TYPE: {"schema": PROBLEM_REF}},
    }


def _is_problem(response: dict[str, Any]) -> bool:
    """Declared as problem JSON, or FastAPI's own 422 (answered as problem JSON here).
    Other error bodies (``/healthz``'s 503 is its ``Health`` document) stay as they are."""
    content = response.get("content", {})
    refs = {str(body.get("schema", {}).get("$ref", "")) for body in content.values()}
    return MEDIA_TYPE in content or any(
        ref.endswith(("/Problem", "/HTTPValidationError")) for ref in refs
    )


def problem_json_document(document: dict[str, Any]) -> dict[str, Any]:
    """The document with every error response described as it is sent (see above)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema()
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for operations in document.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for code, response in list(responses.items()):
                if _is_problem(response):
                    description = response.get("description")
                    if description == "Validation Error":
                        description = None
                    responses[code] = _problem(int(code), description)
            needed = []
            if operation.get("security"):
                needed += [401, 403]
            parameters = operation.get("parameters", [])
            if parameters or "requestBody" in operation:
                needed.append(422)
            if "requestBody" in operation:
                needed.append(400)  # a body that is not JSON at all
            if any(p.get("in") == "path" for p in parameters):
                needed.append(404)
            for status in needed:
                responses.setdefault(str(status), _problem(status))
    return document


def install(app: FastAPI) -> None:
    """``app.openapi()`` (and so ``/api/v1/openapi.json``) answers the rewritten document."""
    generate = app.openapi
    rewritten: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not rewritten:
            rewritten.append(problem_json_document(generate()))
        return rewritten[0]

    app.openapi = openapi  # type: ignore[method-assign]
