"""The kinds of error asof raises on purpose. A caller decides by kind, never by message: the API answers
404 for NotFound, 409 for Conflict, 422 for InvalidInput, 429 for Busy and 503 for Unavailable, and
anything else is a bug (a logged 500), not the client's fault."""


class AsofError(Exception):
    """Base of every error asof raises on purpose."""


class NotFound(AsofError, LookupError):
    """Something named does not exist: an unknown run, job or symbol, or no run published yet."""


class Conflict(AsofError):
    """The request clashes with the current state: a duplicate job, a job that has already finished."""


class InvalidInput(AsofError, ValueError):
    """Input that cannot be accepted. `field` names the parameter at fault when one is (the message then
    starts with it), so an answer can point at it."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class Busy(AsofError):
    """A quota is full (queued jobs, running audits): the same request may succeed later."""


class Unavailable(AsofError):
    """Storage cannot answer now (a catalog locked too long, a damaged or missing file): not the client's
    fault, and worth a retry once an operator has looked."""
