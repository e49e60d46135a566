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


class EncryptionError(StorageError):
    """Base of the encryption-at-rest errors."""


class DecryptionFailed(EncryptionError):
    """Ciphertext or wrapped key did not authenticate: wrong key, wrong context, or tampered.

    Nothing decrypted is ever left behind when this is raised.
    """


class KeyringError(EncryptionError):
    """The master keys cannot be loaded or written as configured (the operator fixes it)."""


class UnknownMasterKey(KeyringError):
    """A data key is wrapped under a master key id that is not loaded."""


class DataKeyNotFound(EncryptionError):
    """No data key was ever made for the recording."""


class DataKeyDestroyed(EncryptionError):
    """The recording's data key was destroyed; its encrypted copies are unreadable for good."""


class TranscodeError(StorageError):
    """The recording cannot be converted as asked (a format limit, not a broken file)."""


class TranscodeUnavailable(TranscodeError):
    """The installed libsndfile cannot write the requested format."""


class BackendUnavailable(TransientStorageError):
    """The backend could not be reached or answered "try later" (refused connection,
    timeout, a 4xx FTP reply, a 5xx from S3); nothing is wrong with the configuration."""


class BackendRefused(StorageError):
    """The backend will keep saying no until an admin acts: bad credentials, a certificate
    or host key that does not verify, permission denied. The message names the backend and
    the problem, never a secret."""


class DiskError(TransientStorageError):
    """A local folder of ours cannot be written or read: the disk is full (ENOSPC),
    read-only (EROFS), the folder is gone or not writable. Never the database being away:
    the call goes on, and what was to be written waits where it is (Asterisk keeps the
    recording) until an admin frees the space or fixes the mount."""

    def __init__(self, area: str, folder: str, exc: OSError) -> None:
        reason = exc.strerror or str(exc) or type(exc).__name__
        path = exc.filename if exc.filename is not None else folder
        super().__init__(f"{area} folder {folder}: {reason} ({path})")
        self.area = area
        self.folder = folder
        self.errno = exc.errno


class PlaybackError(StorageError):
    """A stored recording cannot be played (or played from the asked position)."""


class RecordingErased(PlaybackError):
    """The recording was deleted or erased (its row says so, or its data key is destroyed):
    gone for good, which a web answer spells 410, never "try again"."""


class NoPlayableCopy(PlaybackError):
    """No verified copy could be opened for reading (the message names each one's problem);
    a backend may come back, so this is a "not now" rather than "gone"."""


class ChunkTampered(DecryptionFailed, PlaybackError):
    """A chunk of an encrypted copy did not authenticate while it was being streamed: the
    stream stops before that chunk, so no altered byte ever reaches the listener."""


class CopyChanged(PlaybackError):
    """A plain copy is not the size its verified row says (replaced or cut off since)."""


class RangeUnsupported(StorageError):
    """The backend cannot read part of an object (a backend class without ``read_range``)."""
