"""Schemathesis against the API's own OpenAPI document (``/api/v1/openapi.json``), in
process (ASGI through httpx), on the call page's fixture: the real users module with a
user and a bearer token of each role, two calls (one of another extension), a stereo
recording stored by the real pipeline, share links of a supervisor and of a dpo.

Every operation of the document is a test of its own (taken from the app at collection
time, so what lands later is covered), and each is explored with every role's token and
with none: valid and invalid requests (Schemathesis' positive and negative data), the
known ids mixed in with random ones. No answer may be a 5xx, and every answer must be
as documented: its status code, content type, headers and body schema; invalid data is
refused with a 4xx. Bounded and deterministic (a fixed number of examples per operation
and role, derandomised), so CI runs the same cases every time.

Hypothesis drives the cases from a worker thread while the app runs on the test's own
event loop (the loop the database's connections belong to); each request is handed to
that loop and awaited from the thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from storage_fakes import db_url, sessions
from test_call_page import CALLER, Console, web
from web_routes import console_app, openapi_operations

from pbx_bridge.calls.models import Call
from pbx_bridge.calls.retention import set_class
from pbx_bridge.commands.queue import Outcome, PendingCommand, TakenCommand
from pbx_bridge.commands.taker import CommandAnswer, CommandTaker
from pbx_bridge.subjects.approvals import ApprovalAction, request_approval

__all__ = ["db_url", "sessions", "web"]  # fixtures

# Per operation, per role and mode: enough to reach every parameter's edges, few enough
# that the whole document runs in a minute or two.
MAX_EXAMPLES = 25
ROLES = {"supervisor": "selim", "dpo": "deniz", "admin": "ayse", "auditor": "aydin",
         "anonymous": None}
CHECKS = [
    not_a_server_error, status_code_conformance, content_type_conformance,
    response_headers_conformance, response_schema_conformance, negative_data_rejection,
]
OPERATIONS = openapi_operations(console_app())
REQUEST_TIMEOUT_S = 60


async def _send(client: httpx.AsyncClient, kwargs: dict[str, Any]) -> httpx.Response:
    body: dict[str, Any] = {}
    if kwargs.get("json") is not None:
        body["json"] = kwargs["json"]
    data = kwargs.get("data")
    if isinstance(data, bytes | str):
        body["content"] = data
    elif data is not None:
        body["data"] = data
    if kwargs.get("cookies"):
        body["headers"] = {**kwargs.get("headers", {}), "Cookie": "; ".join(
            f"{name}={value}" for name, value in kwargs["cookies"].items())}
    return await client.request(
        kwargs["method"], kwargs["url"], params=kwargs.get("params"),
        **{"headers": kwargs.get("headers"), **body},
    )


class AnsweringService:
    """A service holding every live call: answers each command to it as done (what a
    call does with it is tests/test_call_commands.py's)."""

    def takes(self, command: PendingCommand) -> bool:
        return command.call_id is not None

    async def carry_out(self, command: TakenCommand) -> CommandAnswer:
        return CommandAnswer(Outcome.DONE, {"paused": command.kind == "pause"})


async def _known_ids(web: Console) -> dict[str, list[str]]:
    """Ids that exist, by path parameter name, so cases reach past the 404."""
    async with web.sessions() as session:  # a live call of the supervisor's extension
        live = Call(direction="inbound", caller=CALLER, did="2125550100", extension="101",
                    announcement="before-connect", legal_basis="consent",
                    retention_class="default", language="tr", channel_id="c-live",
                    linkedid="l-live")
        session.add(live)
        await session.commit()
    paused = await web.client.post(f"/api/v1/calls/{live.id}/pause", headers=web.api("selim"))
    assert paused.status_code == 200, paused.text
    shares = []
    for user in ("selim", "deniz"):
        made = await web.client.post(
            f"/api/v1/recordings/{web.recording_id}/share", json={}, headers=web.api(user)
        )
        assert made.status_code == 201, made.text
        shares.append(made.json()["id"])
    dsars = []
    for kind in ("access", "access", "access", "erasure"):
        opened = await web.client.post("/api/v1/dsar", headers=web.api("deniz"), json={
            "number": CALLER, "type": kind, "channel": "email"})
        assert opened.status_code == 201, opened.text
        dsars.append(opened.json()["id"])
    ran = await web.client.post(f"/api/v1/dsar/{dsars[0]}/run", headers=web.api("deniz"))
    assert ran.status_code == 200, ran.text  # so its answer can be downloaded
    async with web.sessions() as session:  # four eyes are off here: asked as if on
        approvals = [
            (await request_approval(session, ApprovalAction.DSAR_RUN, actor="user:deniz",
                                    user_id="someone", request_id=dsars[3])).id
            for _ in range(1)
        ]
        # Retention classes named as the generator's simplest matches of the class-name
        # pattern, so generated bodies of PUT /calls/{id}/retention can reach a 200.
        for name in ("0", "00", "a"):
            await set_class(session, name, 30)
        await session.commit()
    admin = web.api("ayse")  # a route, an extension, a class, a group for the admin's API
    for path, body in (("/api/v1/retention-classes/sales", {"days": 30}),
                       ("/api/v1/ring-groups/sales",
                        {"members": [{"extension": "101", "ring_s": 15}]}),
                       ("/api/v1/routes/2125550100", {"target": "101"}),
                       ("/api/v1/outbound-routes/0090", {"language": "tr"}),
                       ("/api/v1/extensions/101", {"recording": "always"})):
        made = await web.client.put(path, json=body, headers=admin)
        assert made.status_code == 200, made.text
    return {"call_id": [web.call_id, web.other_call_id, live.id],
            "command_id": [paused.json()["id"]], "recording_id": [web.recording_id],
            "share_id": shares, "dsar_id": dsars, "approval_id": approvals,
            "did": ["2125550100"], "prefix": ["0090"], "ext": ["101"], "name": ["sales"],
            "user_name": ["aydin", "selim"]}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
async def test_every_answer_is_as_documented_and_none_is_a_5xx(
    web: Console, method: str, path: str
) -> None:
    engine = web.sessions.kw["bind"]
    async with CommandTaker(engine, web.sessions, AnsweringService(), node="pbx-1",
                            poll_interval_s=0.05):
        await _explore(web, method, path)


async def _explore(web: Console, method: str, path: str) -> None:
    document = (await web.client.get("/api/v1/openapi.json")).json()
    operation = schemathesis.openapi.from_dict(document)[path][method]
    known = await _known_ids(web)
    path_names = [p["name"] for p in document["paths"][path][method.lower()].get("parameters", [])
                  if p["in"] == "path"]
    fixed = [{name: value} for name in path_names for value in known.get(name, [])]
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.NEGATIVE),
        operation.as_strategy(GenerationMode.POSITIVE),
        *(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=ids) for ids in fixed),
    )
    loop = asyncio.get_running_loop()
    base = str(web.client.base_url)
    answered: dict[str, set[int]] = {}

    def explore(role: str, user: str | None) -> None:
        headers = web.api(user) if user else {}
        seen = answered.setdefault(role, set())

        @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate, Phase.shrink],
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def check(case: Any) -> None:
            kwargs = case.as_transport_kwargs(base_url=base, headers=headers)
            response = asyncio.run_coroutine_threadsafe(
                _send(web.client, kwargs), loop
            ).result(REQUEST_TIMEOUT_S)
            seen.add(response.status_code)
            case.validate_response(response, checks=CHECKS, headers=headers)

        check()

    for role, user in ROLES.items():
        await asyncio.to_thread(explore, role, user)
    # The run reached the operation itself, not only its refusals.
    # (400: a body that is not JSON at all is refused before the token is looked at.)
    assert answered["anonymous"] <= {400, 401, 404, 405, 422} or path == "/healthz", answered
    reached = set().union(*answered.values())
    if path == "/api/v1/approvals/{approval_id}/approve":
        # Four eyes are given in person, never with a token (permissions.approval): a
        # dpo's token is refused with the rule, which is as far as a token gets.
        assert 403 in answered["dpo"], answered
        return
    assert reached & {200, 201, 204, 206}, (method, path, answered)


def test_the_document_describes_every_error_as_problem_json() -> None:
    """What a client generated from the document expects: one operationId per operation,
    and every error body as it is sent (RFC 9457, ``application/problem+json``)."""
    app = console_app()
    document = app.openapi()
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), sorted(ids)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if operation.get("security"):
                assert {"401", "403"} <= set(responses), (method, path)
            if any(p["in"] == "path" for p in operation.get("parameters", [])):
                assert {"404", "422"} <= set(responses), (method, path)
            for code, response in responses.items():
                if code.startswith("4") or (code.startswith("5") and path != "/healthz"):
                    assert response["content"] == {"application/problem+json": {
                        "schema": {"$ref": "#/components/schemas/Problem"}}}, (method, path, code)
    assert "HTTPValidationError" not in document["components"]["schemas"]
