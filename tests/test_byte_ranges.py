"""HTTP Range decisions (RFC 9110 section 14): what the player answers for each header."""

from __future__ import annotations

import pytest

from pbx_bridge.byte_ranges import ByteRange, answer_range, merge_ranges, parse_range

SIZE = 10_000
ETAG = '"ab12"'


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-499", [ByteRange(0, 499)]),
        ("bytes=500-", [ByteRange(500, SIZE - 1)]),
        ("bytes=-500", [ByteRange(SIZE - 500, SIZE - 1)]),
        ("bytes=-20000", [ByteRange(0, SIZE - 1)]),  # a suffix longer than the file: all
        ("bytes=9000-20000", [ByteRange(9000, SIZE - 1)]),  # clamped to the end
        ("BYTES = 1-2", [ByteRange(1, 2)]),
        ("bytes=0-0, -1", [ByteRange(0, 0), ByteRange(SIZE - 1, SIZE - 1)]),
        ("bytes=10000-", []),  # starts at the end: nothing to send
        ("bytes=-0", []),
        ("bytes=20000-30000, 10000-", []),
        ("bytes=20000-30000, 5-6", [ByteRange(5, 6)]),  # the satisfiable ones survive
    ],
)
def test_parse_range(header: str, expected: list[ByteRange]) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize(
    "header",
    ["items=0-1", "bytes", "bytes=", "bytes=abc", "bytes=5-1", "bytes=1-2-3", "bytes=-",
     "bytes=0-1,x"],
)
def test_unparseable_range_is_ignored(header: str) -> None:
    assert parse_range(header, SIZE) is None
    answer = answer_range(header, SIZE)
    assert answer.status == 200 and answer.range == ByteRange(0, SIZE - 1)
    assert answer.headers == {"Accept-Ranges": "bytes", "Content-Length": str(SIZE)}


def test_no_range_is_the_whole_file() -> None:
    answer = answer_range(None, SIZE)
    assert (answer.status, answer.range) == (200, ByteRange(0, SIZE - 1))
    assert answer.headers["Content-Length"] == str(SIZE)
    assert "Content-Range" not in answer.headers


def test_single_range_is_206_with_content_range() -> None:
    answer = answer_range("bytes=100-199", SIZE)
    assert (answer.status, answer.range) == (206, ByteRange(100, 199))
    assert answer.headers == {
        "Accept-Ranges": "bytes", "Content-Range": f"bytes 100-199/{SIZE}",
        "Content-Length": "100",
    }
    suffix = answer_range("bytes=-10", SIZE)
    assert suffix.headers["Content-Range"] == f"bytes {SIZE - 10}-{SIZE - 1}/{SIZE}"


def test_unsatisfiable_is_416_naming_the_size() -> None:
    answer = answer_range(f"bytes={SIZE}-", SIZE)
    assert (answer.status, answer.range) == (416, None)
    assert answer.headers["Content-Range"] == f"bytes */{SIZE}"
    assert answer.headers["Content-Length"] == "0"


def test_several_ranges_are_merged_or_answered_whole() -> None:
    merged = answer_range("bytes=0-99, 50-149, 150-199", SIZE)
    assert (merged.status, merged.range) == (206, ByteRange(0, 199))
    apart = answer_range("bytes=0-99, 500-599", SIZE)
    assert (apart.status, apart.range) == (200, ByteRange(0, SIZE - 1))
    assert merge_ranges([ByteRange(5, 9), ByteRange(0, 4), ByteRange(20, 30)]) == [
        ByteRange(0, 9), ByteRange(20, 30)
    ]


def test_if_range_only_with_our_etag() -> None:
    assert answer_range("bytes=0-9", SIZE, if_range=ETAG, etag=ETAG).status == 206
    assert answer_range("bytes=0-9", SIZE, if_range='"other"', etag=ETAG).status == 200
    date = "Tue, 01 Dec 2026 12:00:00 GMT"
    assert answer_range("bytes=0-9", SIZE, if_range=date, etag=ETAG).status == 200
    assert answer_range("bytes=0-9", SIZE, if_range=ETAG, etag=None).status == 200


def test_empty_recording() -> None:
    whole = answer_range(None, 0)
    assert (whole.status, whole.range, whole.headers["Content-Length"]) == (200, None, "0")
    assert answer_range("bytes=0-", 0).status == 416
    assert answer_range("bytes=-5", 0).status == 416
