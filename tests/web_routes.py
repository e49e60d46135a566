"""What the console serves, walked from the app itself (its routes and its OpenAPI
document), so the security tests and the Schemathesis run cover every page and API
operation that lands later without anyone adding it to a list.

``console_app()`` builds the app without a database (routes and the OpenAPI document need
none), for parametrising tests at collection time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from pbx_bridge.config import Settings
from pbx_bridge.web.accounts import Accounts
from pbx_bridge.web.app import create_app

SECRET = "test-secret-key-" + "0123456789abcdef" * 2


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # as declared: /calls/{call_id}
    in_schema: bool

    @property
    def params(self) -> list[str]:
        return re.findall(r"{([^}:]+)(?::[^}]*)?}", self.path)

    @property
    def is_api(self) -> bool:
        return self.path.startswith("/api/")

    def url(self, **values: str) -> str:
        """The path with each parameter given (others left as written)."""
        return re.sub(
            r"{([^}:]+)(?::[^}]*)?}", lambda m: values.get(m.group(1), m.group(0)), self.path
        )

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def console_app() -> FastAPI:
    """The app as ``pbx-bridge web`` builds it, on an engine that never connects."""
    settings = Settings(web={"secret_key": SECRET})
    engine = create_async_engine("sqlite+aiosqlite://")
    return create_app(settings, cast(Accounts, object()), async_sessionmaker(engine))


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every (method, path) the app routes, pages and API, sorted; HEAD kept only where
    it is declared on its own (Starlette adds it to every GET)."""
    found: set[Endpoint] = set()
    for path, methods, in_schema in _routes(app):
        for method in methods:
            if method == "HEAD" and "GET" in methods:
                continue
            found.add(Endpoint(method, path, in_schema))
    return sorted(found, key=lambda e: (e.path, e.method))


def _contexts(app: FastAPI) -> Iterator[Any]:
    """Each route with its full path: on FastAPI 0.16x an included router stays a router
    (its routes are reached through ``effective_route_contexts``); older ones are flat."""
    for route in app.routes:
        nested = getattr(route, "effective_route_contexts", None)
        if nested is not None:
            yield from nested()
        else:
            yield route


def _routes(app: FastAPI) -> Iterator[tuple[str, set[str], bool]]:
    for route in _contexts(app):
        methods = getattr(route, "methods", None)
        if methods and getattr(route, "path", None):
            yield route.path, set(methods), bool(getattr(route, "include_in_schema", True))


def static_mounts(app: FastAPI) -> list[str]:
    return [route.path for route in app.routes if type(route).__name__ == "Mount"]


def page_endpoints(app: FastAPI) -> list[Endpoint]:
    return [e for e in endpoints(app) if not e.is_api and e.path != "/healthz"]


def form_posts(app: FastAPI) -> list[Endpoint]:
    """The console's unsafe page routes: every one is a form and must check CSRF."""
    return [e for e in page_endpoints(app) if e.method in ("POST", "PUT", "PATCH", "DELETE")]


def openapi_operations(app: FastAPI) -> list[tuple[str, str]]:
    """(METHOD, path) of every operation in the OpenAPI document."""
    document: dict[str, Any] = app.openapi()
    return sorted(
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in ("get", "head", "post", "put", "patch", "delete")
    )


def list_filters(app: FastAPI) -> list[tuple[Endpoint, str]]:
    """Every string query parameter of every GET: the filters of every list, pages and
    API. Taken from the route's declared parameters (FastAPI's dependant), so a list
    added later brings its filters."""
    found: list[tuple[Endpoint, str]] = []
    for context in _contexts(app):
        route = getattr(context, "original_route", context)
        dependant = getattr(route, "dependant", None)
        if dependant is None or "GET" not in (context.methods or ()):
            continue
        for param in _query_params(dependant):
            annotation = str(getattr(param.field_info, "annotation", ""))
            if "str" in annotation or param.field_info.annotation is None:
                found.append((Endpoint("GET", context.path, True), param.alias))
    return sorted(set(found), key=lambda f: (f[0].path, f[1]))


def _query_params(dependant: Any) -> Iterator[Any]:
    yield from dependant.query_params
    for sub in dependant.dependencies:
        yield from _query_params(sub)
