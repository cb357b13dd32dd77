"""Recently encoded answers, by question: runs are immutable, so the same question to the same run has the
same bytes, and a repeat (a dashboard's cross-section, a backtest run twice) costs a lookup. Bounded in
bytes; only questions that name their instant are kept (one asked "now" is never asked again)."""

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from fastapi import Response


@dataclass(frozen=True)
class Answer:
    body: bytes
    media_type: str
    headers: dict[str, str]

    def response(self) -> Response:
        return Response(self.body, media_type=self.media_type, headers=self.headers)


class Answers:
    """At most `max_bytes` of answers, the least recently used dropped first."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._held: OrderedDict[Hashable, Answer] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Answer | None:
        with self._lock:
            answer = self._held.get(key)
            if answer is not None:
                self._held.move_to_end(key)
            return answer

    def keep(self, key: Hashable, response: Response) -> Response:
        """Hold `response`'s answer under `key` (if it fits the budget at all), and hand it back."""
        body = bytes(response.body)
        if len(body) > self.max_bytes // 8:
            return response
        headers = {
            name: value for name, value in response.headers.items() if name.lower() != "content-length"
        }
        answer = Answer(body, response.media_type or "application/octet-stream", headers)
        with self._lock:
            previous = self._held.pop(key, None)
            self._bytes -= 0 if previous is None else len(previous.body)
            self._held[key] = answer
            self._bytes += len(body)
            while self._bytes > self.max_bytes:
                _, dropped = self._held.popitem(last=False)
                self._bytes -= len(dropped.body)
        return response
