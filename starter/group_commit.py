"""Group commit: concurrent small writes share one transaction, each caller still waits for it.

Every event ends with one short write (its receipt marked routed) that must commit before the
sender gets its 2xx. Fifty requests in flight each paying their own transaction, connection
checkout and thread hop cost the API more CPU than the write itself. Here the first caller
starts a flush; callers arriving while it runs are taken together by the next one. A caller
returns only once the transaction holding its item has committed, and gets the flush's error
if it failed, so what an acknowledgement means does not change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_BATCH = 256
"""Items per transaction at most (bounds how long one flush holds the database's write lock)."""


class GroupCommit(Generic[T]):
    """Calls `write(items)` in a thread for the items submitted while the previous call ran."""

    def __init__(
        self,
        write: Callable[[list[T]], None],
        *,
        executor: Executor | None = None,
        max_batch: int = MAX_BATCH,
    ) -> None:
        """`executor`: where `write` runs (None: the event loop's default)."""
        self._write = write
        self._executor = executor
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> None:
        """Return once `item` is committed; raises what `write` raised for its batch."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        # Shielded: a caller that goes away (client disconnect) must not cancel the others' write.
        await asyncio.shield(done)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = (
                self._pending[: self._max_batch],
                self._pending[self._max_batch :],
            )
            try:
                items = [item for item, _ in batch]
                await asyncio.get_running_loop().run_in_executor(self._executor, self._write, items)
            except asyncio.CancelledError:  # shutting down: nobody is left waiting for ever
                for _, done in batch + self._pending:
                    done.cancel()
                raise
            except Exception as err:  # each waiter gets its batch's error
                for _, done in batch:
                    if not done.done():
                        done.set_exception(err)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)
