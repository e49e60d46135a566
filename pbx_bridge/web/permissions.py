"""The actions the console asks the users module about (``Accounts.allowed``)."""

from __future__ import annotations

CALLS_READ = "calls.read"
NUMBERS_UNMASK = "numbers.unmask"
RECORDINGS_READ = "recordings.read"
RECORDINGS_LISTEN = "recordings.listen"
DASHBOARD_READ = "dashboard.read"
STORAGE_STATUS = "storage.status"
DSAR_READ = "dsar.read"
RECORDINGS_SHARE = "recordings.share"
SHARES_READ = "shares.read"
SHARES_REVOKE = "shares.revoke"
CONSENTS_READ = "consents.read"
AUDIT_READ = "audit.read"
AUDIT_VERIFY = "audit.verify"
