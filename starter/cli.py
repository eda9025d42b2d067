"""The `journeys` command.

journeys dev       Temporal dev server + worker + API, all local (Ctrl-C stops all three)
journeys worker    the worker alone, against TEMPORAL_ADDRESS
journeys api       the HTTP API alone, against TEMPORAL_ADDRESS
journeys consume [URL] [--queue Q] [--prefetch N]   events from RabbitMQ (JOURNEYS_AMQP_URL),
                   through the API's ingestion; see docs/streams.md
journeys list      the journeys that are loaded, with their triggers and goals
journeys check     load the configured journeys and check them and their templates; exit 1 on
                   any error (every command that loads journeys checks first, and exits 2)
journeys preview JOURNEY STEP --user ID   render a step's email (--channel sms|push: its text or
                                          notification) with that user's real data
journeys send-test JOURNEY STEP --to ADDRESS [--user ID] [--variant V]   send a step's email,
                   subject "[TEST] ...", through the configured provider; never recorded
journeys pause JOURNEY / resume JOURNEY   the kill switch: stop (or restart) a journey's sends
journeys schedules [list|pause|resume|trigger|backfill]   segment-entry schedules
journeys db [upgrade|current|check|revision MESSAGE]   the database schema (migrations)
journeys report [JOURNEY] [--since DATE] [--json]   lift against the holdout, revenue, steps
journeys users JOURNEY [--step S] [--group G] [--limit N] [--cursor C] [--json]   who is in it now
journeys explain USER [--json]   every journey the user entered or was refused, each step and why
journeys remove JOURNEY USER | JOURNEY --all [--step S] [--group G]   end it now: exited, removed
journeys erase USER [--wait]   erase a user (GDPR/CCPA): journeys ended, data and histories gone
journeys replay [--journey J] [--limit N] [--since 7d] [--running] [FILE...]   before a deploy:
                   replay journeys' histories against this code; exit 1 on non-determinism
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import inspect
import logging
import os
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starter.settings import Settings, serving_problems

if TYPE_CHECKING:
    from workflows.journey import Journey

CHECKED = {
    "dev": True, "worker": True, "preview": True, "send-test": True,
    "api": False, "consume": False, "list": False, "pause": False, "resume": False, "report": False,
    "replay": False, "users": False, "explain": False, "remove": False,
}  # fmt: skip
"""The commands that load journeys, and whether they render templates. Each runs `check` first
(templates too where it renders them) and refuses to start on any error, so a journey written
wrong fails here, once, rather than weeks later in a running journey."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="journeys", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("dev", help="run Temporal, the worker and the API locally")
    commands.add_parser("worker", help="run the worker against TEMPORAL_ADDRESS")
    commands.add_parser("api", help="run the HTTP API against TEMPORAL_ADDRESS")
    consume = commands.add_parser("consume", help="take events from RabbitMQ (docs/streams.md)")
    consume.add_argument(
        "url", nargs="?", help="amqp://user:pass@host:5672/vhost?queue=NAME (JOURNEYS_AMQP_URL)"
    )
    consume.add_argument("--queue", help="the queue (default: ?queue=, else JOURNEYS_AMQP_QUEUE)")
    consume.add_argument("--prefetch", type=int, help="messages in flight (JOURNEYS_AMQP_PREFETCH)")
    commands.add_parser("list", help="list the loaded journeys")
    commands.add_parser("check", help="check the configured journeys and their templates")
    preview = commands.add_parser("preview", help="render a step with a user's real data")
    preview.add_argument("journey")
    preview.add_argument("step")
    preview.add_argument("--user", required=True, help="the user ID whose data to use")
    preview.add_argument("--html", action="store_true", help="print the HTML body too")
    preview.add_argument(
        "--channel", choices=["email", "in_app", "sms", "push"], default="email",
        help="render the step's text (sms) or notification (push) instead of its email",
    )  # fmt: skip
    testing = commands.add_parser("send-test", help="send a step's email to a tester, [TEST]")
    testing.add_argument("journey")
    testing.add_argument("step")
    testing.add_argument("--to", required=True, help="the tester's email address")
    testing.add_argument("--user", help="render with this user's real data (default: preview)")
    testing.add_argument("--variant", help="an A/B/n variant's templates")
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
    users = commands.add_parser("users", help="who is in a journey now, at which step")
    users.add_argument("journey")
    users.add_argument("--step", help="only users at this step")
    users.add_argument("--group", choices=("treatment", "holdout"), help="only this group")
    users.add_argument("--limit", type=int, default=50, metavar="N", help="per page, 1-1000")
    users.add_argument("--cursor", help="the next page, as the page before printed it")
    users.add_argument("--json", action="store_true", help="JSON for machines")
    explain = commands.add_parser("explain", help="a user's journeys: each step, send and why")
    explain.add_argument("user", help="the user ID (or the key `journeys users` lists)")
    explain.add_argument("--json", action="store_true", help="JSON for machines")
    remove = commands.add_parser("remove", help="end a journey now for a user, or --all")
    remove.add_argument("journey")
    remove.add_argument("user", nargs="?", help="the user ID (or the key `journeys users` lists)")
    remove.add_argument("--all", action="store_true", help="every user matching the filters")
    remove.add_argument("--step", help="with --all: only users at this step")
    remove.add_argument("--group", choices=("treatment", "holdout"), help="with --all: this group")
    erase = commands.add_parser("erase", help="erase a user (GDPR/CCPA), as DELETE /v1/users/ID")
    erase.add_argument("user", help="the user ID")
    erase.add_argument("--wait", action="store_true", help="until it is done (a minute or two)")
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
    if args.command == "check":
        return _check(settings)
    if args.command in CHECKED and (errors := _errors(check(settings, CHECKED[args.command]))):
        print(
            f"journeys {args.command}: refusing to start, the journeys in "
            f"JOURNEYS_JOURNEY_MODULES={settings.journey_modules} do not check out:",
            file=sys.stderr,
        )
        print("\n".join(errors), file=sys.stderr)
        return 2

    try:
        if args.command == "dev":
            from starter.dev import run_dev

            asyncio.run(run_dev(settings))
        elif args.command == "worker":
            from worker import run_worker

            asyncio.run(run_worker())
        elif args.command == "api":
            return _run_api(settings)
        elif args.command == "consume":
            return _consume(settings, args.url, args.queue, args.prefetch)
        elif args.command == "list":
            return _list(settings)
        elif args.command == "preview":
            return _preview(settings, args.journey, args.step, args.user, args.html, args.channel)
        elif args.command == "send-test":
            from starter.send_test import send_test

            return send_test(settings, args.journey, args.step, args.to, args.user, args.variant)
        elif args.command == "db":
            return _db(settings, args.db_action, getattr(args, "message", ""))
        elif args.command in ("pause", "resume"):
            return _control(settings, args.journey, args.command == "pause", args.reason)
        elif args.command == "report":
            return _report(settings, args.journey, args.since, args.json)
        elif args.command == "erase":
            code = asyncio.run(_erase(settings, args.user, args.wait))
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)  # as below: no interpreter teardown after the SDK's runtime
        elif args.command in ("schedules", "replay", "users", "explain", "remove"):
            from starter.journey_users import command

            run = {"schedules": _schedules, "replay": _replay}.get(args.command, command)
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


def _consume(settings: Settings, url: str | None, queue: str | None, prefetch: int | None) -> int:
    """`journeys consume`: see starter/streams/ and docs/streams.md."""
    from starter.streams.command import broker_source, consume, describe

    try:
        source = broker_source(settings, url, queue, prefetch)
    except ValueError as err:
        print(f"journeys consume: {err}", file=sys.stderr)
        return 2
    if source is None:
        print("journeys consume: give an amqp:// URL or set JOURNEYS_AMQP_URL", file=sys.stderr)
        return 2
    print(f"journeys consume: {describe(source)}", flush=True)
    code = asyncio.run(consume(settings, source))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as `erase`: no interpreter teardown after the SDK's runtime


def _run_api(settings: Settings) -> int:
    import uvicorn

    from starter.api import create_app

    if problems := serving_problems(settings):  # weak secrets, open off loopback, link keys
        print("journeys api: refusing to start:\n  " + "\n  ".join(problems), file=sys.stderr)
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


def check(settings: Settings, templates: bool = True) -> list[tuple[str, str]]:
    """Everything about the configured journeys that can be checked without running them, as
    (journey or module, "OK" or what is wrong) lines, one or more per journey.

    Each module loads (a journey class validates when it is created) and each name yields a
    journey; event names are non-empty strings; each event a `wait_for` names literally is
    delivered. With `templates`, the template folders exist and so do the templates of every
    step a journey sends by a literal name (or at least its folder), and they parse.
    """
    from activities.templates import Renderer
    from workflows import registry

    loaded = registry.discover(settings.journey_modules)
    lines = [(problem.module, problem.error) for problem in loaded.problems]
    renderer = Renderer(settings.template_folders()) if templates else None
    if templates:
        named = [("JOURNEYS_TEMPLATES_DIRS", f) for f in settings.team_template_folders()]
        if "templates_dir" in settings.model_fields_set:
            named.append(("JOURNEYS_TEMPLATES_DIR", settings.templates_dir))
        lines += [(s, f"no folder {f}") for s, f in named if not f.is_dir()]
    for journey in loaded.journeys:
        problems = _declaration_problems(journey)
        if renderer is not None:
            steps, sends = _sent_templates(journey)
            problems += renderer.check(journey.name, steps, sends=sends)
        lines += [(journey.name, problem) for problem in problems] or [(journey.name, "OK")]
    return lines


def _errors(lines: list[tuple[str, str]]) -> list[str]:
    return [f"{where:24} error: {what}" for where, what in lines if what != "OK"]


def _check(settings: Settings) -> int:
    """`journeys check`: a line per journey, OK or its errors; 1 on any error."""
    lines = check(settings)
    for where, what in lines:
        print(f"{where:24} OK" if what == "OK" else f"{where:24} error: {what}")
    errors = _errors(lines)
    if errors:
        print(f"journeys check: {len(errors)} errors", file=sys.stderr)
        return 1
    return 0


def _declaration_problems(journey: type[Journey]) -> list[str]:
    """Event names that are not non-empty strings, and a `wait_for` on an event the webhook
    would not deliver (an error the journey would otherwise meet only when it gets there)."""
    problems = []
    listens = journey.listens
    if not isinstance(listens, tuple | list | set | frozenset):
        problems.append(
            f'`listens` must be a tuple of event names, e.g. ("Name",); got {listens!r}'
        )
        listens = ()
    conditions = journey.segment.conditions if journey.segment is not None else ()
    declared = {
        "trigger": journey.trigger.events if journey.trigger is not None else (),
        "goal": journey.goal.events if journey.goal is not None else (),
        "listens": tuple(listens),
        "@on": tuple(journey.handlers),
        "segment": tuple(e for c in conditions for e in getattr(c, "events", None) or ()),
    }
    for where, events in declared.items():
        for event in events:
            if not isinstance(event, str) or not event.strip():
                problems.append(f"{where}: event names must be non-empty strings, got {event!r}")
    if problems:
        return problems
    delivered = journey.events_of_interest()
    for where, call in _self_calls(journey, "wait_for"):
        for arg in call.args:
            if isinstance(arg, ast.Constant) and arg.value not in delivered:
                problems.append(
                    f"{where}: wait_for({arg.value!r}) waits for an event the webhook does not "
                    "deliver to this journey: add it to `listens`"
                )
    return problems


def _sent_templates(journey: type[Journey]) -> tuple[dict[str, set[str]], bool]:
    """The step names the journey's own code passes to `self.send` as a string literal, each
    with the channels it may go by, and whether it sends rendered messages at all.

    Only what is certain counts: a send with a non-literal channel, or `**` arguments, might be
    a webhook (no templates); a non-literal step name still needs the journey's folder.
    """
    steps: dict[str, set[str]] = {}
    sends = False
    for _, call in _self_calls(journey, "send"):
        keywords = {k.arg: k.value for k in call.keywords}
        channel = keywords.get("channel", ast.Constant("email"))
        options = channel.elts if isinstance(channel, ast.Tuple) else [channel]
        if None in keywords or not all(isinstance(c, ast.Constant) for c in options):
            continue
        channels = {str(c.value) for c in options if isinstance(c, ast.Constant)}
        channels -= {"webhook", "audience"}  # nothing rendered
        if not channels:
            continue
        sends = True
        template = call.args[0] if call.args else keywords.get("template")
        if isinstance(template, ast.Constant) and isinstance(template.value, str):
            steps.setdefault(template.value, set()).update(channels)
    return steps, sends


def _self_calls(journey: type[Journey], method: str) -> Iterator[tuple[str, ast.Call]]:
    """Calls `self.<method>(...)` in the methods the journey resolves to (not Journey's own),
    with where they are ("module, line N"): read from their source, skipped where there is
    none. Only the call's literal arguments are worth reading: nothing is evaluated."""
    from workflows.journey import Journey

    seen: set[str] = set()
    for klass in journey.__mro__:
        if klass in (Journey, object):
            continue
        for attr, value in vars(klass).items():
            if attr in seen:
                continue
            seen.add(attr)
            function = inspect.unwrap(getattr(value, "__func__", value))
            if not inspect.isfunction(function) or not function.__code__.co_argcount:
                continue
            this = function.__code__.co_varnames[0]
            try:
                tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
            except (OSError, TypeError, SyntaxError):
                continue
            ast.increment_lineno(tree, function.__code__.co_firstlineno - 1)  # the file's lines
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == method
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == this
                    and not any(isinstance(a, ast.Starred) for a in node.args)
                ):
                    yield f"{function.__module__}, line {node.lineno}", node


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
            store,
            registry.load_modules(settings.journey_modules),
            journey=journey,
            since=since,
            global_holdout=settings.global_holdout,
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


async def _erase(settings: Settings, user_id: str, wait: bool) -> int:
    """`journeys erase USER`: what DELETE /v1/users/{id} does (starter/erasure.py); the worker
    carries it out. With --wait, until it is done."""
    from activities.store import Store
    from starter.client import connect
    from starter.erasure import ErasureUnavailable, erasure_workflow_id, request_erasure
    from workflows.erasure import ErasureCounts

    store = Store(settings.database_url)
    try:
        store.migrate()
        client = await connect(settings)
        row = await request_erasure(store, client, settings.task_queue, user_id, "cli")
        print(f"erasure {row.erasure_id} accepted: the worker ends the user's journeys, erases")
        print("their data and deletes their workflow histories")
        if not wait:
            print(f"its status: GET /v1/erasures/{row.erasure_id}")
            return 0
        handle = client.get_workflow_handle(
            erasure_workflow_id(row.erasure_id), result_type=ErasureCounts
        )
        counts = await handle.result()
        print(
            f"done: {counts.journeys_ended} journeys ended, {counts.records_erased} records "
            f"erased, {counts.histories_deleted} workflow histories deleted"
        )
    except (ErasureUnavailable, RuntimeError) as err:
        print(f"journeys erase: {err} unavailable; nothing was accepted, retry", file=sys.stderr)
        return 1
    finally:
        store.dispose()
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


def _preview(
    settings: Settings,
    journey_name: str,
    step: str,
    user_id: str,
    html: bool,
    channel: str = "email",
) -> int:
    """Render as the send activity would, with the user's profile and their last trigger event."""
    from activities.phones import profile_phone
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
        renderer = Renderer(settings.template_folders())
        sending = SendingActivities(store, renderer, None, delivery_policy(settings))
        request = SendRequest(
            idempotency_key="preview", run_id="preview", seq=0, journey=journey.name,
            user_id=user_id, template=step, context=journey.preview_context(event),
            at=datetime.now(UTC), event=event,
        )  # fmt: skip
        context = sending.context_for(request, dict(profile.traits), profile)
        try:
            message = renderer.render_for(channel, journey.name, step, context)
        except TemplateRenderError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        devices = len(store.devices_of(user_id)) if channel == "push" else 0
    finally:
        store.dispose()
    if channel == "sms":
        phone = profile_phone(profile.traits, settings.sms_default_region)
        print(f"To:      {phone or '(no valid phone number: this send would be skipped)'}")
        print(f"({len(message.text)} characters)\n")
        print(message.text)
        return 0
    if channel == "push":
        print(f"To:      {devices} registered device(s)")
        print(f"Title:   {message.subject}\n")
        print(message.text)
        return 0
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
