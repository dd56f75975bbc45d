"""Micro-batching: requests that arrive within a few milliseconds go through the model together.

Each request puts its items (images, or image-question pairs) on an asyncio queue with a
future. One worker task takes the first waiting request, keeps collecting for ``wait_ms`` (or
until ``max_batch`` items), then runs the model on all of them in a single-thread executor:
the event loop stays free to accept requests, and those that arrive while the model runs form
the next batch, so a busy server makes large batches and an idle one answers at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

BatchFn = Callable[[list[Any]], Sequence[Any]]


class MicroBatcher:
    """Runs ``fn(items) -> results`` (same length, same order) over batched requests."""

    def __init__(self, fn: BatchFn, name: str, wait_ms: float = 2.0, max_batch: int = 256):
        self.fn = fn
        self.wait = wait_ms / 1000.0
        self.max_batch = max_batch
        self.queue: asyncio.Queue[tuple[list[Any], asyncio.Future]] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-model")
        self.task: asyncio.Task | None = None
        self.batches = 0  # model calls made; with ``items`` below, shows how well batching works
        self.items = 0

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, items: list[Any]) -> list[Any]:
        """The results for ``items``, computed in a batch with whatever else is waiting."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((items, future))
        return await future

    async def collect(self) -> list[tuple[list[Any], asyncio.Future]]:
        """The first waiting request plus those that join within the wait window."""
        jobs = [await self.queue.get()]
        size = len(jobs[0][0])
        deadline = asyncio.get_running_loop().time() + self.wait
        while size < self.max_batch:
            timeout = deadline - asyncio.get_running_loop().time()
            try:
                job = (
                    self.queue.get_nowait()
                    if timeout <= 0
                    else await asyncio.wait_for(self.queue.get(), timeout)
                )
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            jobs.append(job)
            size += len(job[0])
        return jobs

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self.collect()
            jobs = [(items, fut) for items, fut in jobs if not fut.done()]  # client gone
            if not jobs:
                continue
            try:
                results = await loop.run_in_executor(
                    self.executor, self.fn, [item for items, _ in jobs for item in items]
                )
                self.batches += 1
                self.items += len(results)
            except Exception as exc:  # noqa: BLE001  one bad request must not fail the others
                if len(jobs) > 1:
                    await self.run_alone(jobs)
                elif not jobs[0][1].done():
                    jobs[0][1].set_exception(exc)
                continue
            start = 0
            for items, future in jobs:
                if not future.done():
                    future.set_result(list(results[start : start + len(items)]))
                start += len(items)

    async def run_alone(self, jobs: list[tuple[list[Any], asyncio.Future]]) -> None:
        """After a failed batch: each request on its own, so the error reaches only its sender."""
        loop = asyncio.get_running_loop()
        for items, future in jobs:
            try:
                result = await loop.run_in_executor(self.executor, self.fn, items)
                if not future.done():
                    future.set_result(list(result))
            except Exception as exc:  # noqa: BLE001  handed to the request that caused it
                if not future.done():
                    future.set_exception(exc)
