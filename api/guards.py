"""What stands between the network and the routes, as plain ASGI middleware (nothing is buffered):
`TokenAuth` lets in only who holds a token when one is set, `BodyLimit` refuses an oversized body before
any of it is parsed."""

import hmac

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

OPEN_PATHS = frozenset({"/health"})
"""Paths answered without a token: an orchestrator's liveness probe carries none."""
READ_ONLY_POSTS = frozenset({"/features/batch"})
"""POSTs that only read: a read token may send them."""


async def _refuse(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = orjson.dumps({"detail": detail})
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class TokenAuth:
    """`Authorization: Bearer <token>` on every path but /health: 401 without one, 403 with a wrong one. The
    `read_token`, when set, may only read. Tokens are compared in constant time and never logged."""

    def __init__(self, app: ASGIApp, *, api_token: str, read_token: str | None = None) -> None:
        self.app = app
        self._api_token = api_token.encode()
        self._read_token = None if read_token is None else read_token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        scheme, _, token = dict(scope["headers"]).get(b"authorization", b"").partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            detail = "this service needs `Authorization: Bearer <token>`"
            return await _refuse(send, 401, detail, {"WWW-Authenticate": "Bearer"})
        if hmac.compare_digest(token, self._api_token):
            return await self.app(scope, receive, send)
        if self._read_token is not None and hmac.compare_digest(token, self._read_token):
            if _reads_only(scope):
                return await self.app(scope, receive, send)
            return await _refuse(send, 403, "the read token may read, not start, cancel or audit")
        return await _refuse(send, 403, "the token is not valid for this service")


def _reads_only(scope: Scope) -> bool:
    return scope["method"] in {"GET", "HEAD", "OPTIONS"} or (
        scope["method"] == "POST" and scope["path"] in READ_ONLY_POSTS
    )


class _TooLarge(HTTPException):
    """Raised from the body stream; an HTTPException so the framework answers it (413) rather than
    reporting a body it could not parse."""


class BodyLimit:
    """A request body above `limit` bytes is a 413 before the route parses any of it: at once when the
    client declares its length, as soon as the count passes the limit when it streams the body."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await _refuse(send, 413, self._detail())
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge(413, self._detail())
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if not started:
                await _refuse(send, 413, self._detail())

    def _detail(self) -> str:
        return f"the request body is larger than {self.limit:,} bytes (ASOF_MAX_BODY_BYTES)"
