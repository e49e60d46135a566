"""HTTP Range requests (RFC 9110 section 14) decided without I/O: what to send for a header.

Browsers' media elements ask for ``bytes=N-`` while they play and seek, so the player
answers single ranges with 206. A request for several ranges is answered with the one
range they make after merging overlapping and adjacent ones, and otherwise with 200 and
the whole recording (RFC 9110 lets a server ignore Range; no browser asks a media file for
several, and a multipart/byteranges body would only serve download tools). A Range that
is not ``bytes=`` or does not parse is ignored (200), as the RFC asks; one that parses but
asks nothing inside the recording is 416 with ``Content-Range: bytes */size``. ``If-Range``
is honoured only with our strong ETag (the recording's sha256); a date there cannot be
checked (we send no Last-Modified), so it means "send it all".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive, as HTTP counts

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True)
class RangeAnswer:
    """The status, the bytes to send (None: no body) and the headers that describe them."""

    status: int  # 200, 206 or 416
    range: ByteRange | None
    headers: dict[str, str]


def parse_range(header: str, size: int) -> list[ByteRange] | None:
    """The satisfiable ranges of a ``Range`` header, clamped to ``size``.

    None when the header is to be ignored (another unit, or a syntax error anywhere in it);
    an empty list when it parses but no range overlaps the recording (416).
    """
    unit, sep, specs = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    ranges: list[ByteRange] = []
    parts = specs.split(",")
    for part in parts:
        if not part.strip() and len(parts) > 1:
            continue  # RFC 9110's list syntax allows empty elements
        match = _SPEC.match(part)
        if match is None:
            return None
        first, last = match.group(1), match.group(2)
        if first:
            start = int(first)
            if last and int(last) < start:
                return None
            if start >= size:
                continue
            end = min(int(last), size - 1) if last else size - 1
        elif last:
            suffix = int(last)
            if suffix == 0 or size == 0:
                continue
            start, end = max(0, size - suffix), size - 1
        else:
            return None
        ranges.append(ByteRange(start, end))
    return ranges


def merge_ranges(ranges: list[ByteRange]) -> list[ByteRange]:
    """Overlapping and adjacent ranges as one, in order."""
    merged: list[ByteRange] = []
    for item in sorted(ranges, key=lambda r: r.start):
        if merged and item.start <= merged[-1].end + 1:
            merged[-1] = ByteRange(merged[-1].start, max(merged[-1].end, item.end))
        else:
            merged.append(item)
    return merged


def answer_range(
    range_header: str | None,
    size: int,
    *,
    if_range: str | None = None,
    etag: str | None = None,
) -> RangeAnswer:
    """What to answer a GET for a representation of ``size`` bytes.

    ``etag`` is the quoted strong ETag the response carries (``"<sha256>"``), if any.
    """
    whole = RangeAnswer(
        200,
        ByteRange(0, size - 1) if size else None,
        {"Accept-Ranges": "bytes", "Content-Length": str(size)},
    )
    if range_header is None:
        return whole
    if if_range is not None and (etag is None or if_range.strip() != etag):
        return whole
    ranges = parse_range(range_header, size)
    if ranges is None:
        return whole
    if not ranges:
        return RangeAnswer(
            416,
            None,
            {"Accept-Ranges": "bytes", "Content-Range": f"bytes */{size}",
             "Content-Length": "0"},
        )
    merged = merge_ranges(ranges)
    if len(merged) > 1:
        return whole
    chosen = merged[0]
    return RangeAnswer(
        206,
        chosen,
        {
            "Accept-Ranges": "bytes",
            "Content-Range": f"bytes {chosen.start}-{chosen.end}/{size}",
            "Content-Length": str(chosen.length),
        },
    )


__all__ = ["ByteRange", "RangeAnswer", "answer_range", "merge_ranges", "parse_range"]
