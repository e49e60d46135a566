"""How an admin describes a place recordings are kept: ``[storage.backends.NAME]``.

These models live in the storage layer so it can ship on its own; the service's config
tree mounts them. Every backend declares its jurisdiction (a country code), because KVKK
art. 9 restricts transfers abroad and the customer must be able to prove where copies are.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DEFAULT_PATH_TEMPLATE = "{yyyy}/{mm}/{dd}/{call_id}/{recording_id}.{ext}"
# Values the pipeline fills in; none of them can contain a "/" or "..".
TEMPLATE_FIELDS = frozenset({"yyyy", "mm", "dd", "hh", "call_id", "recording_id", "kind", "ext"})
_COUNTRY = r"^[A-Z]{2}$"
_SCHEDULE_WORDS = frozenset({"immediate", "hourly", "daily"})
_CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")


def check_path_template(template: str) -> str:
    """Only known placeholders, relative, no '..': a key can never leave the base folder."""
    if template.startswith("/") or "\\" in template:
        raise ValueError("must be a relative path with / separators")
    literal_parts: list[str] = []
    for literal, field_name, spec, conversion in string.Formatter().parse(template):
        literal_parts.append(literal)
        if field_name is None:
            continue
        if field_name not in TEMPLATE_FIELDS:
            raise ValueError(
                f"unknown placeholder {{{field_name}}}; allowed: "
                + ", ".join(f"{{{f}}}" for f in sorted(TEMPLATE_FIELDS))
            )
        if spec or conversion:
            raise ValueError(f"placeholder {{{field_name}}} takes no format spec")
    for segment in "".join(literal_parts).split("/"):
        if segment in ("..", "."):
            raise ValueError("must not contain '.' or '..' segments")
    if "{recording_id}" not in template:
        raise ValueError("must contain {recording_id}, or two recordings would share a key")
    return template


def check_schedule(value: str) -> str:
    """immediate, hourly, daily, or a five-field cron expression (minute hour dom mon dow)."""
    if value in _SCHEDULE_WORDS:
        return value
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(
            'must be "immediate", "hourly", "daily" or a cron expression like "0 2 * * *"'
        )
    return value


class _Backend(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    jurisdiction: str = Field(pattern=_COUNTRY, description="ISO 3166 country code")
    encrypt: bool = False
    concurrency: int = Field(default=2, ge=1, le=64)
    schedule: str = "immediate"
    path_template: str = DEFAULT_PATH_TEMPLATE
    # A JSON file beside each copy, so the customer's archive describes itself.
    sidecar: bool = True

    @field_validator("path_template")
    @classmethod
    def _template(cls, value: str) -> str:
        return check_path_template(value)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        return check_schedule(value)


class LocalBackendSettings(_Backend):
    type: Literal["local"] = "local"
    path: Path
    jurisdiction: str = Field(default="TR", pattern=_COUNTRY)
    sidecar: bool = False


class FtpBackendSettings(_Backend):
    """Plain FTP, or FTPS with explicit TLS (AUTH TLS) when ``type = "ftps"``."""

    type: Literal["ftp", "ftps"]
    host: str
    port: int = Field(default=21, ge=1, le=65535)
    username: str = "anonymous"
    password: SecretStr = SecretStr("")
    base_dir: str = "/"
    # FTPS: the server certificate is verified unless verify_tls is false.
    verify_tls: bool = True
    ca_file: Path | None = None
    timeout_s: float = Field(default=30.0, gt=0)


class SftpBackendSettings(_Backend):
    type: Literal["sftp"]
    host: str
    port: int = Field(default=22, ge=1, le=65535)
    username: str
    password: SecretStr | None = None
    private_key_file: Path | None = None
    # Host key checking is on by default; known_hosts None means ~/.ssh/known_hosts.
    known_hosts: Path | None = None
    host_key_checking: bool = True
    base_dir: str = "."
    timeout_s: float = Field(default=30.0, gt=0)


class S3BackendSettings(_Backend):
    type: Literal["s3"]
    bucket: str
    prefix: str = ""
    region: str = "us-east-1"
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    path_style: bool = False
    verify_tls: bool = True
    ca_file: Path | None = None


BackendSettings = Annotated[
    LocalBackendSettings | FtpBackendSettings | SftpBackendSettings | S3BackendSettings,
    Field(discriminator="type"),
]
