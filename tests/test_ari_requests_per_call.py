"""How many ARI REST requests one call costs the service, counted exactly, so a request
cannot creep back unnoticed (as tests/test_storage_statements.py counts SQL statements).

A caller who presses 1 on the sandboxed Asterisk, through `pbx-bridge run` with
/metrics: the ARI request histogram's count per method and path template moves by
exactly these requests while the call is made and its two recordings are stored. With
``[ari] recordings_dir`` set to Asterisk's own folder the downloads and deletes of
stored recordings are not made, and Asterisk still keeps nothing.
"""

from __future__ import annotations

from collections import Counter

import pytest
from e2e_harness import ServiceHarness, recordings_of
from test_call_flow import assert_asterisk_kept_nothing
from test_metrics_e2e import Samples, eventually, metrics_service, scrape
from test_storage_e2e import place_consenting_call

pytestmark = pytest.mark.asterisk

__all__ = ["metrics_service"]  # the fixture, imported for pytest

# One consenting call: bridge (mixed) recording of the conversation, an evidence clip.
CALL = Counter({
    ("GET", "/channels/{id}/variable"): 1,  # the caller's linkedid
    ("POST", "/channels/{id}/answer"): 1,
    ("POST", "/channels/{id}/snoop"): 1,  # the evidence clip's snoop ...
    ("POST", "/channels/{id}/record"): 1,  # ... recorded
    ("POST", "/channels/{id}/play"): 3,  # disclosure, confirmation, ringback
    ("DELETE", "/playbacks/{id}"): 2,  # the disclosure the key interrupted; the ringback
    ("POST", "/recordings/live/{id}/stop"): 2,  # the evidence clip, the conversation
    ("DELETE", "/channels/{id}"): 2,  # the snoop, the caller
    ("POST", "/channels/create"): 1,  # the agent's leg ...
    ("POST", "/channels/{id}/dial"): 1,  # ... dialled
    ("POST", "/bridges"): 1,
    ("POST", "/bridges/{id}/addChannel"): 1,
    ("POST", "/bridges/{id}/record"): 1,
    ("DELETE", "/bridges/{id}"): 1,
})
# Taking the two stored recordings from Asterisk over ARI (the default).
OVER_ARI = Counter({
    ("GET", "/recordings/stored/{id}/file"): 2,
    ("DELETE", "/recordings/stored/{id}"): 2,
})


def requests(samples: Samples) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for (name, labels), value in samples.items():
        if name == "pbx_bridge_ari_request_duration_seconds_count":
            label = dict(labels)
            out[(label["method"], label["path"])] = int(value)
    return out


async def one_call(service: ServiceHarness) -> Counter[tuple[str, str]]:
    """The requests made from before the call until its recordings are stored."""
    url: str = service.metrics_url  # type: ignore[attr-defined]
    service.start()
    before = await scrape(url)
    await place_consenting_call(service)
    (call,) = await service.wait_for_calls(1)
    assert [r["status"] for r in recordings_of(call, "conversation")] == ["stored"]
    assert [r["status"] for r in recordings_of(call, "evidence")] == ["stored"]

    async def cleaned() -> bool:
        return not list(service.asterisk.recordings_dir.glob("*"))

    await eventually(cleaned)
    moved = requests(await scrape(url))
    moved.subtract(requests(before))
    return +moved  # the paths that moved


async def test_a_consenting_call_makes_these_rest_requests(
    metrics_service: ServiceHarness,
) -> None:
    service = metrics_service
    moved = await one_call(service)
    assert moved == CALL + OVER_ARI, dict(moved)
    assert sum(moved.values()) == 23
    assert_asterisk_kept_nothing(service)


async def test_with_asterisks_folder_local_no_downloads_or_deletes(
    metrics_service: ServiceHarness,
) -> None:
    service = metrics_service
    service._env_extra["PBX_BRIDGE_ARI__RECORDINGS_DIR"] = str(
        service.asterisk.recordings_dir)
    moved = await one_call(service)
    assert moved == CALL, dict(moved)
    assert sum(moved.values()) == 19
    assert_asterisk_kept_nothing(service)
    assert "taken over ARI instead" not in service.log_path.read_text(encoding="utf-8")
