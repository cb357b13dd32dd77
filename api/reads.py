"""How much one feature read may ask for, and how many are computed at once: together they bound the
memory reads can take, whatever the clients do."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from vocabulary.errors import InvalidInput


class ReadLimits:
    """`max_cells` bounds one answer (instants x symbols x features, the cells it encodes); at most
    `concurrent` answers are built at once, the others wait their turn."""

    def __init__(self, max_cells: int, concurrent: int) -> None:
        self.max_cells = max_cells
        self._slots = threading.BoundedSemaphore(max(1, concurrent))

    def check(self, rows: int, symbols: int, features: int) -> None:
        """InvalidInput naming the limit when `rows` (instants, or bars of a history) x `symbols` x
        `features` exceeds it."""
        cells = rows * symbols * features
        if cells > self.max_cells:
            raise InvalidInput(
                f"this read asks for {cells:,} values ({rows:,} x {symbols:,} symbols x {features} "
                f"features), more than the {self.max_cells:,} one request may (ASOF_MAX_READ_CELLS): ask "
                "for fewer instants, symbols or features per request"
            )

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._slots:
            yield
