"""The `journeys` command.

journeys dev       Temporal dev server + worker + API, all local (Ctrl-C stops all three)
journeys worker    the worker alone, against TEMPORAL_ADDRESS
journeys api       the HTTP API alone, against TEMPORAL_ADDRESS
journeys list      the journeys that are loaded, with their triggers and goals
journeys preview JOURNEY STEP --user ID   render a step's email with that user's real data
journeys pause JOURNEY / resume JOURNEY   the kill switch: stop (or restart) a journey's sends
journeys schedules [list|pause|resume|trigger|backfill]   segment-entry schedules
journeys db [upgrade|current|check|revision MESSAGE]   the database schema (migrations)
journeys report [JOURNEY] [--since DATE] [--json]   lift against the holdout, revenue, steps
journeys replay [--journey J] [--limit N] [--since 7d] [--running] [FILE...]   before a deploy:
                   replay journeys' histories against this code; exit 1 on non-determinism
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starter.settings import Settings, is_loopback

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
    report = commands.add_parser("report", help="each journey's lift against its holdout")
    report.add_argument("journey", nargs="?", help="one journey (default: all)")
    report.add_argument("--since", type=_when, help="only entries from this ISO date or time")
    report.add_argument("--json", action="store_true", help="JSON for machines")
    database = commands.add_parser("db", help="the database schema: migrations")
    steps = database.add_subparsers(dest="db_action", required=True, metavar="ACTION")
    steps.add_parser("upgrade", help="migrate to this version's schema (run once per deploy)")
    steps.add_parser("current", help="the database's migration, and this code's newest")
    steps.add_parser("check", help="exit 1 unless the database is migrated and matches the models")
    drafting = steps.add_parser("revision", help="draft the next migration from model changes")
    drafting.add_argument("message", help="what changed, e.g. 'profiles get a locale'")
    replaying = commands.add_parser("replay", help="replay histories against this code")
    replaying.add_argument("files", nargs="*", help="history JSON files (default: from Temporal)")
    replaying.add_argument("--journey", action="append", help="only this journey (repeatable)")
    replaying.add_argument("--limit", type=int, default=20, help="histories per journey (20)")
    replaying.add_argument("--since", help="started since: 7d, 12h, 30m or an ISO date")
    replaying.add_argument("--running", action="store_true", help="only runs still running")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migrations log their own summary
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
        elif args.command == "db":
            return _db(settings, args.db_action, getattr(args, "message", ""))
        elif args.command in ("pause", "resume"):
            return _control(settings, args.journey, args.command == "pause", args.reason)
        elif args.command == "report":
            return _report(settings, args.journey, args.since, args.json)
        elif args.command in ("schedules", "replay"):
            run = _schedules if args.command == "schedules" else _replay
            code = asyncio.run(run(settings, args))
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


async def _replay(settings: Settings, args: argparse.Namespace) -> int:
    """`journeys replay`: see starter/replay.py and docs/deploys.md."""
    from pathlib import Path

    from starter.replay import run_command

    files = [Path(f) for f in args.files]
    return await run_command(settings, files, args.journey, args.limit, args.since, args.running)


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

    if settings.api_key is None and not is_loopback(settings.api_host):
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


def _report(settings: Settings, journey: str | None, since: datetime | None, as_json: bool) -> int:
    """Read the results from the database (no Temporal needed) and print them."""
    from sqlalchemy.exc import SQLAlchemyError

    from activities.store import Store
    from starter.report import build_report, render_text
    from workflows import registry
    from workflows.errors import UnknownJourneyError

    store = Store(settings.database_url)
    try:
        report = build_report(
            store, registry.load_modules(settings.journey_modules), journey=journey, since=since
        )
    except UnknownJourneyError as err:
        print(f"journeys report: {err}", file=sys.stderr)
        return 2
    except SQLAlchemyError as err:
        print(
            f"journeys report: cannot read the results at "
            f"{store.engine.url.render_as_string(hide_password=True)} "
            f"({type(err).__name__}); has `journeys dev` or a worker run on it yet?",
            file=sys.stderr,
        )
        return 1
    finally:
        store.dispose()
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        print(render_text(report), end="")
    return 0


def _db(settings: Settings, action: str, message: str) -> int:
    """`journeys db ...`: the migrations, on JOURNEYS_DATABASE_URL."""
    from activities import migrations
    from activities.store import Store

    if action == "revision":
        path = migrations.revision(message)
        print(f"wrote {path}: read it, then `journeys db upgrade` applies it")
        return 0
    store = Store(settings.database_url)
    where = store.engine.url.render_as_string(hide_password=True)
    head = migrations.head()
    try:
        before = migrations.current(store.engine)
        if action == "upgrade":
            store.migrate()
            after = migrations.current(store.engine)
            moved = f"{before or 'no migrations'} -> {after}"
            print(f"{where}: {moved if after != before else f'already at {after}'}")
        elif action == "current":
            state = "up to date" if before == head else f"behind: `journeys db upgrade` -> {head}"
            print(f"{where}: {before or 'no migrations'} ({state})")
        elif before != head:
            print(
                f"{where} is at {before or 'no migration'}, not {head}: run `journeys db upgrade`",
                file=sys.stderr,
            )
            return 1
        elif diffs := migrations.differences(store.engine):
            changes = ", ".join(migrations.describe(diff) for diff in diffs)
            print(
                f"{where} differs from the models ({changes}): write a migration", file=sys.stderr
            )
            return 1
        else:
            print(f"{where}: at {head}, matches the models")
    except migrations.SchemaError as err:
        print(f"journeys db: {err}", file=sys.stderr)
        return 1
    finally:
        store.dispose()
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
    store.migrate()
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
    store.migrate()
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


if __name__ == "__main__":
    sys.exit(main())
