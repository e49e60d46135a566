"""The reconciliation a database outage leaves owing: retried until the database answers,
run once more when something else was owed meanwhile, and never for other errors."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import OperationalError

from pbx_bridge.flow.reconcile import Reconciler


def outage() -> OperationalError:
    return OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))


class FlakyResync:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.succeeded = asyncio.Event()

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise outage()
        self.succeeded.set()


async def owe_and_wait(reconciler: Reconciler, done: asyncio.Event) -> None:
    """Something is owed; wait until the resync says it is done, and a moment more."""
    reconciler.owe("call c2's records", outage())
    await asyncio.wait_for(done.wait(), 5)
    await asyncio.sleep(0.05)


async def test_owed_resync_is_retried_with_backoff_until_the_database_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    resync = FlakyResync(failures=2)
    reconciler = Reconciler(resync, initial_delay_s=0.01, max_delay_s=0.02)
    reconciler.owe("call c1's records", outage())
    assert reconciler.owed
    await asyncio.wait_for(resync.succeeded.wait(), 5)
    await asyncio.sleep(0.05)
    assert resync.calls == 3 and not reconciler.owed
    assert "database unavailable, call c1's records left for the resync" in caplog.text
    assert "connection refused" in caplog.text
    await reconciler.close()


async def test_a_resync_at_connect_during_an_outage_is_owed_not_raised() -> None:
    resync = FlakyResync(failures=1)
    reconciler = Reconciler(resync, initial_delay_s=0.01)
    await reconciler.run_resync("after connecting")  # does not raise
    await asyncio.wait_for(resync.succeeded.wait(), 5)
    assert resync.calls == 2
    await reconciler.close()


async def test_other_errors_of_the_resync_are_not_swallowed() -> None:
    async def broken() -> None:
        raise KeyError("a bug")

    reconciler = Reconciler(broken)
    with pytest.raises(KeyError):
        await reconciler.run_resync("after connecting")
    assert not reconciler.owed


async def test_something_owed_during_a_run_gets_another_run() -> None:
    calls = 0
    done = asyncio.Event()
    reconciler: Reconciler

    async def resync() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            reconciler.owe("a recording's end", outage())  # written while it ran
        else:
            done.set()

    reconciler = Reconciler(resync, initial_delay_s=0.01)
    await owe_and_wait(reconciler, done)
    assert calls == 2 and not reconciler.owed
    await reconciler.close()


async def test_an_unexpected_error_of_an_owed_resync_does_not_end_the_reconciliation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0
    done = asyncio.Event()

    async def resync() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyError("a bug")
        done.set()

    reconciler = Reconciler(resync, initial_delay_s=0.01)
    await owe_and_wait(reconciler, done)
    assert calls == 2 and not reconciler.owed  # tried again after the bug, and done
    assert "reconciliation after the database outage failed unexpectedly" in caplog.text
    assert "KeyError: 'a bug'" in caplog.text
    await reconciler.close()
