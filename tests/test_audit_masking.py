"""What an auditor sees of an audit entry (pbx_bridge/web/audit_masking.py, pure): the
details the trail writes today, each with what must be hidden and what must stay."""

from __future__ import annotations

from pbx_bridge.web.audit_masking import HIDDEN, EntryView, masked_details, masked_entry, masked_ip

CALL = "5d9c2c52-1234-4567-8901-0123456789ab"
SHA = "0123456789" * 6 + "abcd"


def test_numbers_are_hidden_by_name_and_in_any_text() -> None:
    assert masked_details({"number": "0532***4567", "caller": "+905321234567",
                           "callee_number": "02125550100"}) == {
        "number": HIDDEN, "caller": HIDDEN, "callee_number": HIDDEN}
    # A number inside text, written any way, and a masked one.
    assert masked_details({"where": ["local:2026/05321234567.wav"],
                           "summary": "called +90 532 123 45 67 then 0532***4567"}) == {
        "where": [f"local:2026/{HIDDEN}.wav"], "summary": f"called {HIDDEN} then {HIDDEN}"}


def test_free_text_is_hidden_and_codes_stay() -> None:
    # A legal hold's reason, a deletion's reason naming the hold, a note, a file name.
    assert masked_details({"reason": "Dava 2026/17 Ahmet"}) == {"reason": HIDDEN}
    assert masked_details({"reason": "on legal hold (dava); not deleted"}) == {"reason": HIDDEN}
    assert masked_details({"note": "for the lawyer", "out": "/tmp/ahmet.wav"}) == {
        "note": HIDDEN, "out": HIDDEN}
    # Reasons that are codes (sign-in failures, deletions) are what an audit reads.
    for code in ("wrong-password", "erasure", "retention", "totp_invalid"):
        assert masked_details({"reason": code}) == {"reason": code}


def test_addresses_keep_their_network_only() -> None:
    assert masked_ip("203.0.113.9") == "203.0.x.x"
    assert masked_ip("2001:db8::1") == "2001:0db8:x:x:x:x:x:x"
    assert masked_ip("not an address") == HIDDEN
    assert masked_details({"ip": "192.0.2.1", "via": "media"}) == {
        "ip": "192.0.x.x", "via": "media"}


def test_ids_hashes_times_counts_and_staff_stay() -> None:
    kept = {
        "share_id": CALL, "ids": [CALL, CALL], "sha256": SHA, "prompt_sha256": SHA,
        "count": 12, "bytes": 1048576, "size_bytes": 12345678901, "unmasked": True,
        "expires_at": "2026-12-08T14:00:00+00:00", "user": "ayse", "scopes": ["audit.read"],
        "range": "0-1048575", "digit": "1", "decision": "granted", "call": CALL,
        "head_hash": SHA, "problem": None,
    }
    assert masked_details(kept) == kept


def test_changes_keep_their_shape_and_a_routes_did() -> None:
    changes = {"changes": {"did": {"from": None, "to": "02125550100"},
                           "target": {"from": "101", "to": "102"},
                           "note": {"from": None, "to": "Ahmet's line"}}}
    assert masked_details(changes) == {"changes": {
        "did": {"from": None, "to": "02125550100"},
        "target": {"from": "101", "to": "102"},
        "note": {"from": None, "to": HIDDEN}}}


def test_an_entry_masks_its_actor_and_details_never_its_hashes_or_target() -> None:
    entry = EntryView(
        seq=7, at="2026-12-01T10:00:00.000000Z", actor="ip:198.51.100.20",
        action="auth.sign_in_failed", target="user:unknown", outcome="refused",
        details={"ip": "198.51.100.20", "reason": "wrong-credentials"},
        prev_hash=SHA, hash=SHA[::-1],
    )
    shown = masked_entry(entry)
    assert shown.actor == "ip:198.51.x.x" and shown.details["ip"] == "198.51.x.x"
    assert (shown.seq, shown.target, shown.hash, shown.prev_hash) == (
        7, "user:unknown", SHA[::-1], SHA)
    assert entry.details["ip"] == "198.51.100.20"  # the stored view is left as it was
    staff = masked_entry(EntryView(1, entry.at, "token:abc(ayse)", "token.created",
                                   "token:abc", "ok", {"user": "ayse"}, SHA, SHA))
    assert staff.actor == "token:abc(ayse)" and staff.details == {"user": "ayse"}
