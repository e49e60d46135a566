"""Every API operation refuses a query parameter it does not know.

A misspelt filter (``?extention=100``) silently ignored would answer as if there were no
filter: a list of every call, every consent, every audit entry the token may see. So an
unknown name is a 422 naming it and the ones the operation takes, decided from the
operation's own declared parameters, so a new endpoint is covered without a list here.
"""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute


def _query_names(dependant: Dependant) -> frozenset[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


_known: dict[tuple[object, str], frozenset[str]] = {}


def known_query_names(route: APIRoute) -> frozenset[str]:
    """The operation's own query parameters and its dependencies' (one walk per
    operation; routes are not hashable, their endpoint functions are)."""
    key = (route.endpoint, route.path)
    names = _known.get(key)
    if names is None:
        names = _known[key] = _query_names(route.dependant)
    return names


async def refuse_unknown_query(request: Request) -> None:
    """A router dependency of every ``/api/v1`` router (see app.py)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = known_query_names(route)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise HTTPException(
            422, f"unknown query parameter {unknown[0]!r}: this operation takes {takes}"
        )
