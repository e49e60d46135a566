"""The storage layer's Prometheus metrics, and where every metric of pbx-bridge lives.

All metrics register in prometheus-client's default registry and are named
``pbx_bridge_*``, so the service's one ``/metrics`` endpoint serves both layers. The
storage layer defines its own here (it never imports ``pbx_bridge/``); the upper layer's
are in ``pbx_bridge/metrics.py``. Defining a metric costs nothing in a CLI process that
never serves it.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

JOB_RUNS = Counter(
    "pbx_bridge_job_runs",
    "Runs of a background job (purger, sweeper, reconciler, due report, audit watch, ...)"
    " that finished without an error.",
    ["job"],
)
JOB_FAILURES = Counter(
    "pbx_bridge_job_failures",
    "Runs of a background job that failed; kind is 'transient' (database or disk away,"
    " retried sooner) or 'unexpected' (a bug: logged with its traceback, the job carries on).",
    ["job", "kind"],
)
JOB_LAST_SUCCESS = Gauge(
    "pbx_bridge_job_last_success_timestamp_seconds",
    "Unix time of a background job's last successful run (0 until it has run once).",
    ["job"],
)
DISK_ERRORS = Counter(
    "pbx_bridge_disk_errors",
    "Failed file operations in a folder of ours, by area ('spool', 'local'): full,"
    " read-only or not writable. Work waits and is retried (Asterisk keeps the recording);"
    " alert on any increase.",
    ["area"],
)
LOOP_LAG = Gauge(
    "pbx_bridge_event_loop_lag_seconds",
    "How late the service's event loop wakes up (smoothed): calls and storage share it,"
    " and storage holds back while this is above [storage] busy_lag_ms.",
)
STORAGE_DEFERRED = Counter(
    "pbx_bridge_storage_deferred",
    "Pipeline steps that waited for the event loop to catch up, so callers were served"
    " first (the recording waits safely in Asterisk meanwhile).",
)
