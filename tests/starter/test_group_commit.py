"""Group commit: callers share transactions, and none returns before its own item is written."""

from __future__ import annotations

import asyncio
import threading

import pytest

from starter.group_commit import GroupCommit


class Log:
    """A write function that keeps what each call wrote, and can be made to fail or wait."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.fail: set[int] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        """Set once a write has begun (and is held at the gate if it is closed)."""

    def write(self, items: list[int]) -> list[int | Exception]:
        """Each item's result is its square; a negative item is refused on its own."""
        self.entered.set()
        self.gate.wait(5)
        if self.fail & set(items):
            raise OSError("disk gone")
        self.batches.append(list(items))
        return [ValueError(f"no {i}") if i < 0 else i * i for i in items]

    @property
    def written(self) -> list[int]:
        return [item for batch in self.batches for item in batch]


async def test_concurrent_callers_share_transactions_and_each_returns_once_written():
    log = Log()
    group = GroupCommit(log.write)
    seen_on_return: list[bool] = []

    async def one(item: int) -> None:
        await group.submit(item)
        seen_on_return.append(item in log.written)

    await asyncio.gather(*(one(i) for i in range(100)))
    assert sorted(log.written) == list(range(100))  # each item once
    assert len(log.batches) < 10  # shared: not a transaction per caller
    assert all(seen_on_return)


async def test_a_failed_write_reaches_every_caller_of_its_batch_and_the_next_batch_goes_on():
    log = Log()
    group = GroupCommit(log.write)
    log.gate.clear()  # hold the first write so the next callers gather into one batch
    first = asyncio.create_task(group.submit(0))
    await asyncio.to_thread(log.entered.wait, 5)
    log.fail = {1}
    doomed = [asyncio.create_task(group.submit(i)) for i in (1, 2, 3)]
    await asyncio.sleep(0)  # each submits (and queues behind the held write)
    log.gate.set()
    await first
    for task in doomed:
        with pytest.raises(OSError, match="disk gone"):
            await task
    log.fail = set()
    await group.submit(4)
    assert log.written == [0, 4]


async def test_a_caller_that_goes_away_does_not_take_the_others_write_with_it():
    log = Log()
    group = GroupCommit(log.write)
    log.gate.clear()
    leaving = asyncio.create_task(group.submit(1))
    staying = asyncio.create_task(group.submit(2))
    await asyncio.to_thread(log.entered.wait, 5)  # both are in the write now held
    leaving.cancel()  # the client disconnected
    log.gate.set()
    await staying
    assert log.written == [1, 2]  # the write went ahead whole
    assert leaving.cancelled()


async def test_batches_are_bounded():
    log = Log()
    group = GroupCommit(log.write, max_batch=8)
    await asyncio.gather(*(group.submit(i) for i in range(30)))
    assert sorted(log.written) == list(range(30))
    assert max(len(batch) for batch in log.batches) <= 8


async def test_each_caller_gets_its_own_result_and_a_refused_item_fails_alone():
    log = Log()
    group = GroupCommit(log.write)
    outcomes = await asyncio.gather(*(group.submit(i) for i in (2, -1, 3)), return_exceptions=True)
    assert outcomes[0] == 4 and outcomes[2] == 9
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "no -1"
    assert len(log.batches) == 1  # one write for the three


async def test_a_write_done_at_once_on_the_loop_needs_no_thread_and_one_refused_gets_one():
    log = Log()
    threads: list[str] = []
    refused: list[list[int]] = []

    def write(items: list[int]) -> list[int | Exception]:
        threads.append(threading.current_thread().name)
        return log.write(items)

    def at_once(items: list[int]) -> list[int | Exception] | None:
        if 7 in items:  # as if another writer held the lock: nothing written, hand it over
            refused.append(list(items))
            return None
        return write(items)

    group = GroupCommit(write, at_once=at_once)
    loop_thread = threading.current_thread().name
    assert await group.submit(3) == 9
    assert threads == [loop_thread]  # done on the loop's own thread
    assert await group.submit(7) == 49
    assert refused == [[7]]
    assert len(threads) == 2 and threads[1] != loop_thread  # handed to a thread, written there
    assert log.written == [3, 7]
