"""Errors of the sandboxed Asterisk and its SIP drivers."""

from __future__ import annotations


class SandboxError(Exception):
    """Base class: something in the test/demo sandbox went wrong."""


class SandboxRootError(SandboxError):
    """The Debian root with Asterisk could not be built or is unusable."""


class SandboxStartError(SandboxError):
    """Asterisk did not come up (the message carries the tail of its log)."""


class SandboxCommandError(SandboxError):
    """An Asterisk CLI command through ``asterisk -rx`` failed."""


class SippError(SandboxError):
    """sipp could not be started or its scenario could not be prepared."""
