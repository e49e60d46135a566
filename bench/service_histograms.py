"""The service's own latency histograms, read from its ``/metrics`` before and after a phase.

pbx-bridge times, on its side, a key that interrupts a prompt until Asterisk confirms the
prompt stopped (``pbx_bridge_keypress_to_action_seconds``) and the answer until the
disclosure's first audio (``pbx_bridge_answer_to_disclosure_seconds``). A phase's share is
the difference of the cumulative buckets; a percentile is then known only up to its
bucket, so it is reported as the bucket's upper bound ("p95 ≤ 250 ms").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

KEYPRESS = "pbx_bridge_keypress_to_action_seconds"
DISCLOSURE = "pbx_bridge_answer_to_disclosure_seconds"

Buckets = dict[float, float]  # upper bound (s) -> cumulative count


@dataclass(frozen=True)
class Snapshot:
    histograms: dict[str, Buckets]

    def minus(self, before: Snapshot) -> Snapshot:
        return Snapshot({
            name: {le: count - before.histograms.get(name, {}).get(le, 0.0)
                   for le, count in buckets.items()}
            for name, buckets in self.histograms.items()
        })

    def count(self, name: str) -> int:
        buckets = self.histograms.get(name, {})
        return int(buckets.get(math.inf, 0.0))

    def percentile_ms(self, name: str, fraction: float) -> float | None:
        """The upper bound (ms) of the bucket holding the ``fraction`` percentile; None
        without observations, ``inf`` when it is beyond the last finite bucket."""
        buckets = sorted(self.histograms.get(name, {}).items())
        total = buckets[-1][1] if buckets else 0.0
        if total <= 0:
            return None
        for le, cumulative in buckets:
            if cumulative >= fraction * total:
                return le * 1000
        return math.inf


def parse(text: str) -> Snapshot:
    histograms: dict[str, Buckets] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in (KEYPRESS, DISCLOSURE):
            continue
        buckets = histograms.setdefault(family.name, {})
        for sample in family.samples:
            if sample.name == family.name + "_bucket":
                buckets[float(sample.labels["le"])] = float(sample.value)
    return Snapshot(histograms)


async def scrape(url: str | None) -> Snapshot:
    """The histograms now; empty when the service serves no metrics (or not yet these)."""
    if url is None:
        return Snapshot({})
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(url)
    except httpx.HTTPError:
        return Snapshot({})
    return parse(response.text) if response.status_code == 200 else Snapshot({})


def summary(phase: Snapshot) -> dict[str, float | int | None]:
    return {
        "service_keypress_count": phase.count(KEYPRESS),
        "service_keypress_p50_le_ms": phase.percentile_ms(KEYPRESS, 0.50),
        "service_keypress_p95_le_ms": phase.percentile_ms(KEYPRESS, 0.95),
        "answer_to_disclosure_count": phase.count(DISCLOSURE),
        "answer_to_disclosure_p50_le_ms": phase.percentile_ms(DISCLOSURE, 0.50),
        "answer_to_disclosure_p95_le_ms": phase.percentile_ms(DISCLOSURE, 0.95),
    }
