"""Exceptions of the ARI client, one class per way a call to Asterisk can go wrong.

Callers catch what they can act on: a channel that is already gone (`AriNotFound`) is
routine during a hangup race, while Asterisk being unreachable (`AriConnectionError`) is
not. Messages name the method and path so logs are useful; they never carry credentials.
"""

from __future__ import annotations


class AriError(Exception):
    """Anything that went wrong talking to Asterisk's REST interface."""


class AriConnectionError(AriError):
    """Asterisk could not be reached: refused, reset, timed out, or the name did not resolve."""


class AriResponseError(AriError):
    """Asterisk answered with a success status but a body this client cannot read."""


class AriEventError(AriError):
    """An event of a known type arrived without the fields that type requires."""


class AriHttpError(AriError):
    """Asterisk answered with an HTTP error status."""

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.message = message
        super().__init__(f"{method} {path} -> {status}: {message}")


class AriBadRequest(AriHttpError):
    """400: a parameter was missing or invalid (ARI also uses it for 'channel not found'
    when the channel is a query parameter, e.g. bridges/addChannel)."""


class AriAuthError(AriHttpError):
    """401/403: the ARI user or password was refused."""


class AriForbidden(AriAuthError):
    """403: refused; for stored recordings ARI also says this when the file cannot be opened."""


class AriNotFound(AriHttpError):
    """404: the channel, bridge, playback or recording does not exist (any more)."""


class AriConflict(AriHttpError):
    """409: the object exists already, or is not in a Stasis application."""


class AriPreconditionFailed(AriHttpError):
    """412: the channel is in a state where the operation is not possible."""


class AriUnprocessable(AriHttpError):
    """422: a well-formed request that Asterisk cannot honour (unknown format, wrong bridge)."""


class AriServerError(AriHttpError):
    """5xx: Asterisk failed internally (e.g. a missing recording directory)."""


_BY_STATUS: dict[int, type[AriHttpError]] = {
    400: AriBadRequest,
    401: AriAuthError,
    403: AriForbidden,
    404: AriNotFound,
    409: AriConflict,
    412: AriPreconditionFailed,
    422: AriUnprocessable,
}


def error_for_status(status: int, method: str, path: str, message: str) -> AriHttpError:
    """The most specific exception for an HTTP error status."""
    if status >= 500:
        return AriServerError(status, method, path, message)
    cls = _BY_STATUS.get(status, AriHttpError)
    return cls(status, method, path, message)
