"""`journeys worker` with a workflow cache of a chosen size, for `bench.memory` and `bench.timers`.

    .venv/bin/python -m bench.cached_worker --max-cached-workflows 50000

The product's worker (worker.py) takes the SDK's default, 1000 cached workflows per worker,
and has no setting for it; this runs the very same worker (same settings from the environment,
same workflows, activities and sandbox) with `max_cached_workflows` set, by handing
`worker.create_worker` a Worker class with that default. Without the option it is exactly
`journeys worker`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import inspect

from temporalio.worker import Worker

import worker as product

SDK_DEFAULT = int(inspect.signature(Worker.__init__).parameters["max_cached_workflows"].default)
"""The SDK's own default (1000 in temporalio 1.35), what `journeys worker` runs with."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-cached-workflows", type=int, default=None)
    args = parser.parse_args()
    if args.max_cached_workflows is not None:
        sized = functools.partial(Worker, max_cached_workflows=args.max_cached_workflows)
        setattr(product, "Worker", sized)  # noqa: B010 (the name create_worker calls)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(product.run_worker())


if __name__ == "__main__":
    main()
