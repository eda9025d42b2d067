"""The `journeys` command.

journeys dev       Temporal dev server + worker + API, all local (Ctrl-C stops all three)
journeys worker    the worker alone, against TEMPORAL_ADDRESS
journeys api       the HTTP API alone, against TEMPORAL_ADDRESS
journeys list      the journeys that are loaded, with their triggers and goals
journeys preview JOURNEY STEP --user ID   render a step's email with that user's real data
journeys pause JOURNEY / resume JOURNEY   the kill switch: stop (or restart) a journey's sends
journeys schedules [list|pause|resume|trigger|backfill]   segment-entry schedules
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starter.settings import Settings

if TYPE_CHECKING:
    from workflows.journey import Journey


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="journeys", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("dev", help="run Temporal, the worker and the API locally")
    commands.add_parser("worker", help="run the worker against TEMPORAL_ADDRESS")
    commands.add_parser("api", help="run the HTTP API against TEMPORAL_ADDRESS")
    commands.add_parser("list", help="list the loaded journeys")
    preview = commands.add_parser("preview", help="render a step with a user's real data")
    preview.add_argument("journey")
    preview.add_argument("step")
    preview.add_argument("--user", required=True, help="the user ID whose data to use")
    preview.add_argument("--html", action="store_true", help="print the HTML body too")
    for name, what in (("pause", "stop every send of"), ("resume", "restart the sends of")):
        control = commands.add_parser(name, help=f"{what} a journey (running journeys wait)")
        control.add_argument("journey")
        control.add_argument("--reason", default=None)
    scheduling = commands.add_parser("schedules", help="the segment-entry schedules")
    actions = scheduling.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="each schedule: when it runs, paused, next and recent runs")
    for name, what in (
        ("pause", "stop a journey's segment runs"),
        ("resume", "start a journey's segment runs again"),
        ("trigger", "run a journey's segment now"),
        ("backfill", "run a journey's segment for each scheduled time in a past period"),
    ):
        action = actions.add_parser(name, help=what)
        action.add_argument("journey")
        if name == "pause":
            action.add_argument("--reason", default=None)
        if name == "backfill":
            action.add_argument("--start", required=True, type=_when, help="ISO date or time")
            action.add_argument("--end", required=True, type=_when, help="ISO date or time")
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
        elif args.command == "preview":
            return _preview(settings, args.journey, args.step, args.user, args.html)
        elif args.command in ("pause", "resume"):
            return _control(settings, args.journey, args.command == "pause", args.reason)
        elif args.command == "schedules":
            code = asyncio.run(_schedules(settings, args))
            # The SDK's Rust runtime can crash the interpreter's teardown (SIGSEGV) right after
            # a short-lived client; everything is done and flushed, so leave without teardown.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    except KeyboardInterrupt:
        pass
    return 0


def _when(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def _schedules(settings: Settings, args: argparse.Namespace) -> int:
    """`journeys schedules ...`: the segment-entry schedules on TEMPORAL_ADDRESS."""
    from starter import schedules
    from starter.client import connect

    client = await connect(settings)
    action = args.action or "list"
    try:
        if action == "list":
            infos = await schedules.list_schedules(client)
            if not infos:
                print("no segment schedules (a worker creates them when it starts)")
            for info in infos:
                state = "PAUSED" if info.paused else "active"
                nxt = info.next_runs[0].isoformat(timespec="minutes") if info.next_runs else "-"
                last = (
                    info.recent_runs[-1].isoformat(timespec="minutes") if info.recent_runs else "-"
                )
                print(
                    f"{info.journey:20} {state:7} cron {info.cron!r} ({info.timezone})  "
                    f"next {nxt}  last {last}  {info.id}"
                )
        elif action == "pause":
            await schedules.pause(client, args.journey, args.reason)
            print(f"paused the segment schedule of {args.journey}")
        elif action == "resume":
            await schedules.resume(client, args.journey)
            print(f"resumed the segment schedule of {args.journey}")
        elif action == "trigger":
            await schedules.trigger(client, args.journey)
            print(f"started a segment run of {args.journey}; follow it in the Temporal UI")
        elif action == "backfill":
            await schedules.backfill(client, args.journey, args.start, args.end)
            print(f"backfilling {args.journey} from {args.start} to {args.end}")
    except schedules.UnknownSchedule as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
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
        entry = " or ".join(repr(e) for e in (journey.trigger, journey.segment) if e is not None)
        print(f"{journey.name:24} {entry}  {goal}  holdout {journey.holdout:.0%}")
    return 0


def _preview(settings: Settings, journey_name: str, step: str, user_id: str, html: bool) -> int:
    """Render as the send activity would, with the user's profile and their last trigger event."""
    from activities.sending import SendingActivities
    from activities.store import Store
    from activities.templates import Renderer, TemplateRenderError
    from worker import delivery_policy
    from workflows.models import SendRequest

    journey = _journey(settings, journey_name)
    if journey is None:
        return 2
    store = Store(settings.database_url)
    store.create_all()
    try:
        profile = store.get_profile(user_id)
        if profile is None:
            print(f"error: no profile for user {user_id!r}", file=sys.stderr)
            return 2
        event: dict[str, object] = {}
        for name in sorted(journey.trigger.events if journey.trigger else ()):
            summary = store.event_summary(user_id, name)
            if summary is not None:
                event = summary.last_properties
        renderer = Renderer(settings.templates_dir)
        sending = SendingActivities(store, renderer, None, delivery_policy(settings))
        request = SendRequest(
            idempotency_key="preview", run_id="preview", seq=0, journey=journey.name,
            user_id=user_id, template=step, context=journey.preview_context(event),
            at=datetime.now(UTC), event=event,
        )  # fmt: skip
        context = sending.context_for(request, dict(profile.traits), profile)
        try:
            message = renderer.render(journey.name, step, context)
        except TemplateRenderError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    finally:
        store.dispose()
    print(f"To:      {profile.email or '(no email address: this send would be skipped)'}")
    print(f"Subject: {message.subject}\n")
    print(message.text)
    if html:
        print("\n--- HTML ---\n" + message.html)
    return 0


def _control(settings: Settings, journey: str, paused: bool, reason: str | None) -> int:
    from activities.store import Store

    if _journey(settings, journey) is None:
        return 2
    store = Store(settings.database_url)
    store.create_all()
    try:
        store.set_paused(journey, paused, reason)
        state = "paused: no sends until `journeys resume`" if paused else "resumed"
        print(f"{journey} {state}")
    finally:
        store.dispose()
    return 0


def _journey(settings: Settings, name: str) -> type[Journey] | None:
    """The loaded journey called `name`, or None after saying on stderr which ones exist."""
    from workflows import registry
    from workflows.errors import UnknownJourneyError

    registry.load_modules(settings.journey_modules)
    try:
        return registry.get(name)
    except UnknownJourneyError as err:
        print(f"error: {err}", file=sys.stderr)
        return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
