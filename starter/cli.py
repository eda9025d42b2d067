"""The `journeys` command.

journeys dev       Temporal dev server + worker + API, all local (Ctrl-C stops all three)
journeys worker    the worker alone, against TEMPORAL_ADDRESS
journeys api       the HTTP API alone, against TEMPORAL_ADDRESS
journeys list      the journeys that are loaded, with their triggers and goals
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import sys

from starter.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="journeys", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("dev", help="run Temporal, the worker and the API locally")
    commands.add_parser("worker", help="run the worker against TEMPORAL_ADDRESS")
    commands.add_parser("api", help="run the HTTP API against TEMPORAL_ADDRESS")
    commands.add_parser("list", help="list the loaded journeys")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings()

    try:
        if args.command == "dev":
            from starter.dev import run_dev

            asyncio.run(run_dev(settings))
        elif args.command == "worker":
            from worker import run_worker

            asyncio.run(run_worker())
        elif args.command == "api":
            return _run_api(settings)
        elif args.command == "list":
            return _list(settings)
    except KeyboardInterrupt:
        pass
    return 0


def _run_api(settings: Settings) -> int:
    import uvicorn

    from starter.api import create_app

    if settings.api_key is None and not _is_loopback(settings.api_host):
        print(
            f"refusing to serve without JOURNEYS_API_KEY on {settings.api_host}: "
            "set a key, or bind to 127.0.0.1",
            file=sys.stderr,
        )
        return 2
    uvicorn.run(
        create_app(settings), host=settings.api_host, port=settings.api_port, access_log=False
    )
    return 0


def _list(settings: Settings) -> int:
    from workflows import registry

    for journey in registry.load_modules(settings.journey_modules):
        goal = f"goal {journey.goal!r}" if journey.goal else "no goal"
        print(f"{journey.name:24} {journey.trigger!r}  {goal}  holdout {journey.holdout:.0%}")
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
