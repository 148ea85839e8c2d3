"""Domain errors. The gRPC shell maps each to one status code (see
scheduler/server/errors.py); the core raises nothing else on bad input."""


class PowerplaneError(Exception):
    """Base of every domain error."""


class InvalidArgument(PowerplaneError):
    """The request is malformed; the message says what is wrong."""


class NotFound(PowerplaneError):
    """No such object, or it belongs to someone else."""


class FailedPrecondition(PowerplaneError):
    """The object is in a state where the request cannot apply."""


class Unauthenticated(PowerplaneError):
    """Missing or unknown credentials."""


class IllegalTransition(PowerplaneError):
    """A job state change not allowed by the transition table (a bug if raised)."""
