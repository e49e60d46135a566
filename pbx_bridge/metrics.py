"""The upper layer's Prometheus metrics: calls, consent, ARI, latency, backlog, health.

Conventions (shared with ``storage/metrics.py``): prometheus-client's default registry,
names ``pbx_bridge_*``, and labels that take a handful of values only: a disposition, an
outcome, a status, a backend's name, an HTTP method, a path template. Never an id, a
number or a phone number, so the series stay few and hold no personal data. Each metric
is fed by one line where its event happens; the gauges read from the database are
refreshed by ``metrics_refresh.py``; ``metrics_server.py`` serves them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram

# -- calls and consent ----------------------------------------------------------------

LIVE_CALLS = Gauge("pbx_bridge_live_calls", "Calls the service is handling now.")
CALLS = Counter(
    "pbx_bridge_calls",
    "Calls the service ended, by disposition (answered, abandoned, busy, no-answer,"
    " failed).",
    ["disposition"],
)
CONSENT_DECISIONS = Counter(
    "pbx_bridge_consent_decisions",
    "Consent rows saved, by outcome (granted, declined, timeout, not-asked, withdrawn, "
    "not-objected).",
    ["outcome"],
)

TRANSFERS = Counter(
    "pbx_bridge_transfers",
    "Transfers by agents, by mode (blind, attended) and outcome (completed, busy,"
    " no-answer, unreachable, cancelled, refused, caller-left).",
    ["mode", "outcome"],
)

# -- latency the caller feels -----------------------------------------------------------

KEYPRESS_TO_ACTION = Histogram(
    "pbx_bridge_keypress_to_action_seconds",
    "From Asterisk receiving a key that interrupts a prompt (the event's timestamp) to"
    " Asterisk confirming the prompt stopped (PlaybackFinished).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5),
)
ANSWER_TO_DISCLOSURE = Histogram(
    "pbx_bridge_answer_to_disclosure_seconds",
    "From answering the caller to the disclosure's first audio (PlaybackStarted).",
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
)

# -- Asterisk (ARI) ----------------------------------------------------------------------

ARI_REQUEST_DURATION = Histogram(
    "pbx_bridge_ari_request_duration_seconds",
    "ARI REST requests, from sending to the answer (or the transport error), by method"
    " and path template (ids replaced by {id}).",
    ["method", "path"],
)
ARI_RECONNECTS = Counter(
    "pbx_bridge_ari_reconnects",
    "Times the ARI event websocket was connected again after a previous connection.",
)
ARI_CONNECTED = Gauge(
    "pbx_bridge_ari_connected", "1 while the ARI event websocket is connected, else 0."
)

# -- the database and what waits in it (refreshed by metrics_refresh.py) -----------------

DATABASE_UNAVAILABLE = Gauge(
    "pbx_bridge_database_unavailable",
    "1 while the database is away (a write failed and the resync is owed, or the last"
    " metrics refresh could not reach it), else 0.",
)
RECORDINGS = Gauge(
    "pbx_bridge_recordings", "Recordings by status (recording, ..., stored, deleted).",
    ["status"],
)
COPIES = Gauge(
    "pbx_bridge_recording_copies",
    "Copies waiting for a backend (status pending) or given up on (status dead), per"
    " backend.",
    ["backend", "status"],
)
OLDEST_UNSTORED_AGE = Gauge(
    "pbx_bridge_oldest_unstored_recording_age_seconds",
    "Age of the oldest recording Asterisk finished that is not yet stored on every"
    " backend (0 when there is none).",
)
PURGE_LAG = Gauge(
    "pbx_bridge_purge_lag_seconds",
    "How long past its retain_until the oldest expired recording not on legal hold is"
    " still not deleted (0 when the purge is up to date).",
)
DSARS_OVERDUE = Gauge(
    "pbx_bridge_dsar_requests_overdue",
    "Data-subject requests still open or in progress past their due date.",
)
METRICS_REFRESHED = Gauge(
    "pbx_bridge_metrics_refresh_timestamp_seconds",
    "Unix time the database-derived gauges were last refreshed.",
)


# Every literal word in an ARI REST path; any other segment is an id (ours, Asterisk's,
# a sound's or an application's name) and is replaced, so ids never become label values.
_ARI_PATH_WORDS = frozenset((
    "addChannel", "answer", "applications", "asterisk", "bridges", "channels", "config",
    "continue", "control", "copy", "create", "deviceStates", "dial", "dtmf", "dynamic",
    "endpoints", "eventFilter", "events", "externalMedia", "file", "hold", "info", "live",
    "logging", "mailboxes", "modules", "moh", "move", "mute", "ping", "play", "playbacks",
    "record", "recordings", "redirect", "removeChannel", "ring", "rotate",
    "rtp_statistics", "sendMessage", "silence", "snoop", "sounds", "stop", "stored",
    "subscription", "transfer_progress", "unmute", "variable", "videoSource",
))


def ari_path_template(path: str) -> str:
    """``/channels/pbxb-3f.../play`` → ``/channels/{id}/play`` (query strings dropped)."""
    segments = path.split("?", 1)[0].strip("/").split("/")
    return "/" + "/".join(s if s in _ARI_PATH_WORDS else "{id}" for s in segments if s)


def seconds_since(moment: datetime) -> float:
    """Time elapsed since an Asterisk event's timestamp (never negative: clocks differ)."""
    return max(0.0, (datetime.now(UTC) - moment).total_seconds())


def observe_ari_request(method: str, path: str, seconds: float) -> None:
    ARI_REQUEST_DURATION.labels(method, ari_path_template(path)).observe(seconds)
