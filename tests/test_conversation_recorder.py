"""The conversation's row committed ahead of the recording (while the bridge is built).

A fake pipeline and ARI stand in for storage and Asterisk: what is checked is which rows
the recorder begins, which it marks failed, and what it asks Asterisk to record. The real
path (the stored file holds both parties from the join) is in tests/test_call_flow.py.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from pbx_bridge.flow.context import FlowContext
from pbx_bridge.flow.inbox import CallInbox
from pbx_bridge.flow.recorder import ConversationRecorder


class Pipeline:
    def __init__(self) -> None:
        self.begun: list[dict[str, Any]] = []
        self.failed: list[tuple[str, str]] = []

    async def begin(self, **kw: Any) -> SimpleNamespace:
        self.begun.append(kw)
        n = len(self.begun)
        return SimpleNamespace(id=f"rec-{n}", asterisk_name=f"pbxb-rec-{n}")

    async def mark_failed(self, recording_id: str, reason: str) -> None:
        self.failed.append((recording_id, reason))


class Ari:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str]] = []
        self.stopped: list[str] = []

    async def record_bridge(self, bridge_id: str, name: str, **kw: Any) -> None:
        self.recorded.append((bridge_id, name))

    async def stop_recording(self, name: str) -> None:
        self.stopped.append(name)


def recorder() -> tuple[ConversationRecorder, Pipeline, Ari]:
    pipeline, ari = Pipeline(), Ari()
    ctx = cast(FlowContext, SimpleNamespace(
        ari=ari, pipeline=pipeline, call=SimpleNamespace(stereo=False), ownership=None,
    ))
    rec = ConversationRecorder(
        ctx, "call-1", "pbxb-call-call-1", legal_basis="consent", retention_class="default",
        retention_days=60, inbox=CallInbox(), caller_id="caller", agent_id="agent",
    )
    return rec, pipeline, ari


async def test_a_prepared_row_is_the_one_recorded() -> None:
    rec, pipeline, ari = recorder()
    await rec.prepare()
    assert len(pipeline.begun) == 1 and ari.recorded == []  # a row before any record request
    assert await rec.start()
    assert len(pipeline.begun) == 1  # no second row
    assert ari.recorded == [("pbxb-call-call-1", "pbxb-rec-1")]
    assert pipeline.begun[0]["retention_days"] == 60 and pipeline.begun[0]["layout"] == "mixed"
    await rec.stop()
    assert ari.stopped == ["pbxb-rec-1"] and pipeline.failed == []


async def test_a_call_ending_before_the_recording_began_fails_its_prepared_row() -> None:
    rec, pipeline, ari = recorder()
    await rec.prepare()
    await rec.stop()  # the caller hung up while the bridge was built
    assert pipeline.failed == [("rec-1", "call ended before the recording began")]
    assert ari.recorded == [] and ari.stopped == []
    await rec.stop()
    assert len(pipeline.failed) == 1  # once


async def test_each_on_demand_start_after_a_stop_is_a_new_recording() -> None:
    rec, pipeline, ari = recorder()
    await rec.prepare()
    assert await rec.start()
    await rec.stop()
    assert await rec.start()
    assert [name for _, name in ari.recorded] == ["pbxb-rec-1", "pbxb-rec-2"]
    assert pipeline.failed == []
