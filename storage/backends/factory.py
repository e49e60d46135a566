"""From the admin's ``[storage.backends.NAME]`` tables to live backend objects.

The only place that knows which class serves which ``type``; the pipeline and the CLI
just ask for backends by name.
"""

from __future__ import annotations

from collections.abc import Mapping

from storage.backends.base import Backend
from storage.backends.ftp import FtpBackend
from storage.backends.local import LocalBackend
from storage.backends.s3 import S3Backend
from storage.backends.settings import (
    BackendSettings,
    FtpBackendSettings,
    LocalBackendSettings,
    S3BackendSettings,
    SftpBackendSettings,
)
from storage.backends.sftp import SftpBackend


def build_backend(name: str, settings: BackendSettings) -> Backend:
    backend: Backend
    if isinstance(settings, LocalBackendSettings):
        backend = LocalBackend(settings.path)
        backend.name = name
        backend.jurisdiction = settings.jurisdiction
    elif isinstance(settings, FtpBackendSettings):
        backend = FtpBackend(settings, name)
    elif isinstance(settings, SftpBackendSettings):
        backend = SftpBackend(settings, name)
    elif isinstance(settings, S3BackendSettings):
        backend = S3Backend(settings, name)
    else:  # pragma: no cover - the settings union is closed
        raise TypeError(f"no backend for settings {type(settings).__name__}")
    return backend


def build_backends(backends: Mapping[str, BackendSettings]) -> dict[str, Backend]:
    return {name: build_backend(name, settings) for name, settings in backends.items()}
