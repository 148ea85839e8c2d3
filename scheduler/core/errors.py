"""Domain errors. The gRPC shell maps each to one status code (see
scheduler/server/interceptor.py); the core raises nothing else on bad input.

`shown` quotes a caller's value in an error message, cut short so that a huge
value is never echoed back whole."""

SHOWN_CHARS = 64


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """`value` quoted for an error message: repr of at most `limit` characters, '…' where cut."""
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return repr(text)


class PowerplaneError(Exception):
    """Base of every domain error."""


class InvalidArgument(PowerplaneError):
    """The request is malformed; the message says what is wrong."""


class NotFound(PowerplaneError):
    """No such object, or it belongs to someone else."""


class FailedPrecondition(PowerplaneError):
    """The object is in a state where the request cannot apply."""


class OutOfRange(PowerplaneError):
    """A position no longer kept (a watch resuming from a compacted event id)."""


class Unavailable(PowerplaneError):
    """Not possible now, but worth trying again (a site's agent away or silent)."""


class Unauthenticated(PowerplaneError):
    """Missing or unknown credentials."""


class PermissionDenied(PowerplaneError):
    """Valid credentials, but their role may not make this call."""


class IllegalTransition(PowerplaneError):
    """A job state change not allowed by the transition table (a bug if raised)."""
