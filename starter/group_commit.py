"""Group commit: concurrent small writes share one transaction, each caller still waits for it.

Every event begins and ends with a short write (its receipt recorded, then marked routed) that
must commit before the sender gets its 2xx. Fifty requests in flight each paying their own
transaction, connection checkout and thread hop cost the API more CPU than the writes
themselves, and on SQLite each commit copies every page it touched into the WAL again. Here the
first caller starts a flush; callers arriving while it runs are taken together by the next one.
A caller returns only once the transaction holding its item has committed, with its own
result, or the error its item (or the whole flush) failed with, so what an acknowledgement
means does not change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 256
"""Items per transaction at most (bounds how long one flush holds the database's write lock)."""


class GroupCommit(Generic[T, R]):
    """Calls `write(items)` in a thread for the items submitted while the previous call ran.

    `write` returns one result per item, in order; an Exception in an item's place is raised to
    that item's caller alone.
    """

    def __init__(
        self,
        write: Callable[[list[T]], Sequence[R | Exception]],
        *,
        executor: Executor | None = None,
        max_batch: int = MAX_BATCH,
        at_once: Callable[[list[T]], Sequence[R | Exception] | None] | None = None,
    ) -> None:
        """`executor`: where `write` runs (None: the event loop's default). `at_once`: tried
        first, on the event loop's thread, for writes that are quick unless they have to wait;
        it returns None, having written nothing, where it would have to (then `write` runs).

        A hand-off to a thread and back costs more CPU here (100-170 us on these machines)
        than a SQLite write whose lock is free, so on SQLite the API writes on the loop and
        leaves only the waits for the lock to its writer thread."""
        self._write = write
        self._at_once = at_once
        self._executor = executor
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Return `item`'s result once it is committed; raises its error, or its batch's."""
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        # Shielded: a caller that goes away (client disconnect) must not cancel the others' write.
        return await asyncio.shield(done)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = (
                self._pending[: self._max_batch],
                self._pending[self._max_batch :],
            )
            try:
                items = [item for item, _ in batch]
                results = self._at_once(items) if self._at_once is not None else None
                if results is None:
                    results = await asyncio.get_running_loop().run_in_executor(
                        self._executor, self._write, items
                    )
            except asyncio.CancelledError:  # shutting down: nobody is left waiting for ever
                for _, done in batch + self._pending:
                    done.cancel()
                raise
            except Exception as err:  # each waiter gets its batch's error
                for _, done in batch:
                    if not done.done():
                        done.set_exception(err)
                continue
            if len(results) != len(batch):  # a broken `write`: nobody may take it as written
                results = [RuntimeError("group commit: wrong number of results")] * len(batch)
            for (_, done), result in zip(batch, results, strict=True):
                if done.done():
                    continue
                if isinstance(result, Exception):
                    done.set_exception(result)
                else:
                    done.set_result(result)
