"""The call list through the console among 1,000,000 calls: the page (``GET /calls``,
HTML) and the API (``GET /api/v1/calls``, JSON) through the real ASGI application, against
the plain indexed query in the same run.

The calls are ``call_list.py``'s (the same generator, bulk load and ``ANALYZE``). The app
is ``create_app`` on the real users module, driven in-process by httpx's ASGITransport
(no sockets, so the figures are the application's: cookie or token to the user, the
permission, the search, the audit entry of an unmasked page, the template or the JSON):

- signed in as a **dpo** (every call, numbers unmasked: each page is one
  ``calls.unmasked`` audit entry) and as a **supervisor of three extensions** granted
  unmask (their scope in the query);
- cases: the first page, a deep page (a cursor half-way back, signed by the app for the
  same filters), a number filter (a typical caller; the caller with 2,000 calls) and a
  disposition filter (busy);
- the **baseline**: ``SELECT * FROM calls ORDER BY started_at DESC, id DESC LIMIT 50``,
  the cheapest page there is, in the same process between the requests.

Each case runs ``--repeat`` times (the first cold); p50 and p95, this process's CPU time
per request, and the machine's load average as the case ended (the times are wall time:
whatever else runs shares the CPU, the CPU per request is what it costs us); every
answer must be 200 with as many calls as the data set says, or the run fails.

    .venv/bin/python bench/call_list_web.py [--calls N] [--repeat R] [--quick] [--database URL]
"""

from __future__ import annotations

import base64
import os
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from call_list import (
    EXTENSIONS,
    LIMIT,
    SCOPE,
    SUBJECTS,
    WITHDRAWN_EVERY,
    _expected_page,
    _quantiles,
    call_id,
    reference_of,
    run_phases,
    started_of,
)
from common import BenchCheckFailed, cpu_seconds, emit_result, peak_rss_kib
from statement_counts import postgres_round_trips  # tests/, on the path by common
from subject_lookup import HEAVY_CALLS, NOW, SECRET, e164_of, subject_of

SCRIPT = Path(__file__).resolve()
PASSWORD = "bench password 1"
WEB_SECRET = "bench-web-secret-" + "0123456789abcdef" * 2
BASELINE = "baseline: plain indexed first page"
# The page lists one row per call: its start time links to the call page.
ROW = re.compile(r'<a href="/calls/[0-9a-f-]{36}"')


def _extension_of(i: int) -> str:
    return EXTENSIONS[((i * 2654435761) >> 9) % len(EXTENSIONS)]


def _in_scope(calls: int) -> int:
    """A call (its index) of the supervisor's extensions, three quarters of the way back."""
    return next(i for i in range(calls * 3 // 4, calls) if _extension_of(i) in SCOPE)


def _cases(calls: int) -> list[tuple[str, dict[str, str], int | None]]:
    """(label, query parameters, index of the call the cursor starts after or None)."""
    week = (NOW - timedelta(days=14), NOW - timedelta(days=7))
    return [
        ("first page", {}, None),
        ("deep page (cursor half-way)", {}, calls // 2),
        ("number: typical caller", {"number": e164_of(1)}, None),
        (f"number: caller with {HEAVY_CALLS} calls", {"number": e164_of(0)}, None),
        ("disposition busy", {"disposition": "busy"}, None),
        (f"extension {SCOPE[1]}", {"extension": SCOPE[1]}, None),
        (f"extension {SCOPE[1]}, abandoned", {"extension": SCOPE[1],
                                              "disposition": "abandoned"}, None),
        ("consent declined (walked)", {"consent": "declined"}, None),
        ("consent withdrawn (rare)", {"consent": "withdrawn"}, None),
        ("a week", {"since": week[0].isoformat(), "until": week[1].isoformat()}, None),
        ("reference", {"reference": reference_of(_in_scope(calls))}, None),
    ]


def _expected(label: str, calls: int, scoped: bool) -> int:
    """Calls on the page by the data set's own rule (the scope's share of a caller)."""
    if label == "reference":
        return 1
    rules = {
        "number: typical caller": lambda i: subject_of(i, SUBJECTS) == 1,
        f"number: caller with {HEAVY_CALLS} calls": lambda i: subject_of(i, SUBJECTS) == 0,
        "consent withdrawn (rare)": lambda i: i % WITHDRAWN_EVERY == 0 and i % 10 != 9,
    }
    if not scoped or label not in rules:
        return _expected_page(label, calls)
    rule = rules[label]
    return min(LIMIT, sum(1 for i in range(calls) if rule(i) and _extension_of(i) in SCOPE))


async def _measure_phase(db: str, calls: int, repeat: int) -> None:
    import httpx
    from sqlalchemy import select, text

    from pbx_bridge.calls.extensions import set_extension
    from pbx_bridge.calls.models import Call
    from pbx_bridge.calls.search import Keyset
    from pbx_bridge.config import RecordingMode, Role, Settings
    from pbx_bridge.users import accounts, tokens
    from pbx_bridge.users.console_accounts import UsersAccounts
    from pbx_bridge.users.models import User
    from pbx_bridge.web import accounts as console
    from pbx_bridge.web.app import create_app
    from pbx_bridge.web.filters import call_filter
    from storage.database import make_engine, make_session_factory

    work = Path(tempfile.mkdtemp(prefix="pbxb-bench-web-"))
    settings = Settings(
        database={"url": db},
        # Cheap hashes: sign-in is not what is measured.
        auth={"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1},
        privacy={"subject_key": base64.b64encode(SECRET).decode(),
                 "subject_key_file": work / "unused.key"},
        web={"secret_key": WEB_SECRET},
    )
    engine = make_engine(db)
    sessions = make_session_factory(engine)
    users = await UsersAccounts.from_settings(settings, sessions)
    async with sessions() as session:
        # A kept database (--phase measure run again, as for a before/after pair on
        # one bulk load) has the users already.
        if not await session.scalar(select(User.id).where(User.name == "deniz")):
            for ext in SCOPE:
                await set_extension(session, ext, RecordingMode.ALWAYS)
            await accounts.add_user(session, name="deniz", role=Role.DPO, password=PASSWORD,
                                    auth=settings.auth, actor="bench", default_target="100")
            await accounts.add_user(session, name="selim", role=Role.SUPERVISOR,
                                    password=PASSWORD, auth=settings.auth, actor="bench",
                                    default_target="100", extensions=SCOPE, unmask=True)
            await session.commit()
        bearer = {}
        for name in ("deniz", "selim"):
            _, bearer[name] = await tokens.create_token(
                session, user_name=name, scopes=["*"], days=1, actor="bench")
        await session.commit()
    cookies = {}
    for name in ("deniz", "selim"):
        opened = await users.sign_in(
            console.SignInAttempt(name, PASSWORD, None, "127.0.0.1", "bench", None))
        cookies[name] = opened.session_id
    app = create_app(settings, users, sessions)
    signer = app.state.web.cursor_signer
    results: dict[str, Any] = {}
    pages: dict[str, tuple[int, int]] = {}  # label -> (found, expected)

    async def timed(label: str, run: Callable[[], Awaitable[int]]) -> None:
        times, found = [], 0
        cpu_before = time.process_time()
        for _ in range(repeat):
            started = time.perf_counter()
            found = await run()
            times.append(time.perf_counter() - started)
        # This process's CPU per request (all its threads; not the PostgreSQL server's),
        # which the machine's load does not stretch, and the 1-minute load average as
        # the case ended: other work shares the cores, and the wall times show it.
        cpu = (time.process_time() - cpu_before) / repeat
        # And, untimed, the waits for PostgreSQL of one more (statements prepared on a
        # connection new to them left out: once per connection, not per request).
        trips = None
        if db.startswith("postgresql"):
            with postgres_round_trips() as seen:
                await run()
            trips = sum(1 for trip in seen if trip != "PREPARE")
        results[label] = {**_quantiles(times), "cpu": cpu, "load": os.getloadavg()[0],
                          "trips": trips}
        if label != BASELINE:
            expected = _expected(label.split(": ", 1)[1], calls, "supervisor" in label)
            pages[label] = (found, expected)

    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                              base_url="http://127.0.0.1:8090") as client,
        ):
            async with sessions() as session:
                await session.execute(text("SELECT 1"))
            cpu0 = cpu_seconds()

            async def baseline() -> int:
                async with sessions() as session:
                    rows = (await session.scalars(
                        select(Call).order_by(Call.started_at.desc(), Call.id.desc())
                        .limit(LIMIT)
                    )).all()
                return len(rows)

            await timed(BASELINE, baseline)
            for role, user, scope in (("dpo", "deniz", None),
                                      ("supervisor", "selim", frozenset(SCOPE))):
                for label, params, after in _cases(calls):
                    query = dict(params)
                    if after is not None:
                        filters = replace(call_filter(**params), extensions=scope)
                        query["cursor"] = signer.encode(
                            Keyset(started_of(after, calls), call_id(after)), filters)

                    async def page(q: dict[str, str] = query, u: str = user) -> int:
                        answer = await client.get(
                            "/calls", params=q, headers={"Cookie": f"pbxb_session={cookies[u]}"})
                        if answer.status_code != 200:
                            raise BenchCheckFailed(f"/calls {q}: {answer.status_code}")
                        return len(ROW.findall(answer.text))

                    async def api(q: dict[str, str] = query, u: str = user) -> int:
                        answer = await client.get(
                            "/api/v1/calls", params=q,
                            headers={"Authorization": f"Bearer {bearer[u]}"})
                        if answer.status_code != 200:
                            raise BenchCheckFailed(f"/api/v1/calls {q}: {answer.status_code}")
                        return len(answer.json())

                    await timed(f"page {role}: {label}", page)
                    await timed(f"API {role}: {label}", api)
                await timed(BASELINE + " (again)", baseline)
            cpu = cpu_seconds() - cpu0
    finally:
        await engine.dispose()
    emit_result({"times": results, "pages": pages, "cpu_s": cpu,
                 "peak_rss_kib": peak_rss_kib()})


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> int:
    ran = run_phases(SCRIPT, __doc__, "call-list-web", "pbxb-bench-calls-web-",
                     _measure_phase)
    if ran is None:
        return 0
    calls, repeat, database, setup, run = ran.calls, ran.repeat, ran.database, ran.setup, ran.run
    for label, (found, want) in run["pages"].items():
        if found != want:
            raise BenchCheckFailed(f"{label}: a page of {found} calls, {want} expected")
    print(f"call list through the console on {database}: {calls:,} calls (inserted and "
          f"analysed in {setup['rows_s']:.1f} s); pages of {LIMIT}, {repeat} requests "
          "each, first cold; in-process ASGI")
    print(f"  {'case':<52} {'first':>10} {'p50':>10} {'p95':>10} {'CPU/req':>10} {'load':>6}"
          f" {'trips':>5}")
    for label, t in run["times"].items():
        trips = "" if t.get("trips") is None else str(t["trips"])
        print(f"  {label:<52} {_ms(t['first']):>10} {_ms(t['p50']):>10} {_ms(t['p95']):>10}"
              f" {_ms(t['cpu']):>10} {t['load']:>6.1f} {trips:>5}")
    base = run["times"][BASELINE]["p95"]
    worst = max((t["p95"], label) for label, t in run["times"].items()
                if label in run["pages"])
    print(f"  worst p95: {_ms(worst[0])} ({worst[1]}), {worst[0] / base:.1f}x the "
          "baseline's; goal < 200 ms")
    print(f"  CPU {run['cpu_s']:.2f} s for all; peak RSS {run['peak_rss_kib'] / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
