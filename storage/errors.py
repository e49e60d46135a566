"""What can go wrong while keeping a recording, split by what the pipeline does about it.

A ``TransientStorageError`` is retried with backoff (nothing is lost by waiting); any other
``StorageError`` is a verdict about the recording or the request itself.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error the storage layer raises on purpose."""


class TransientStorageError(StorageError):
    """Worth retrying later: a peer is unreachable or a copy did not verify."""


class UnsafeKey(StorageError, ValueError):
    """A storage key (or a part of one) could escape the backend's root."""


class CorruptRecording(StorageError):
    """The fetched file is not audio we can vouch for; the Asterisk copy is kept."""


class IntegrityMismatch(TransientStorageError):
    """The stored copy's size or sha256 differs from the spooled file's."""


class RecordingNotFound(StorageError):
    """No recording row has the given id or Asterisk name."""


class ObjectNotFound(StorageError):
    """A backend holds no object under the given key."""
