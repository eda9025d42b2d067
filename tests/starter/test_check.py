"""`journeys check`, and every command that loads journeys refusing to start on what it finds.

The commands run as processes, as an operator runs them, with JOURNEYS_JOURNEY_MODULES naming
packages written into a temporary folder on PYTHONPATH. A refused worker must stop before it
connects: TEMPORAL_ADDRESS points at a closed port, so a worker that went on would fail
differently (and the timeout keeps a hung one from hanging the suite).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from starter.cli import check
from starter.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
JOURNEYS = str(Path(sys.executable).parent / "journeys")
TEAM_TEMPLATES = ROOT / "tests" / "team_package" / "templates"

NO_STEPS = """
from workflows import Journey, Trigger


class NoSteps(Journey):
    name = "no_steps"
    trigger = Trigger("Signed Up")
"""

QUIET = '''
from datetime import timedelta

from workflows import Journey, Trigger


class Quiet(Journey):
    """Sends nothing, so it needs no templates."""

    name = "{name}"
    trigger = Trigger("Signed Up")

    async def steps(self) -> None:
        await self.sleep(timedelta(days=1))
'''

SENDS_HELLO = """
from workflows import Journey, Trigger


class Hello(Journey):
    name = "{name}"
    trigger = Trigger("Signed Up")

    async def steps(self) -> None:
        await self.send("hello")
"""


def package(root: Path, name: str, **modules: str) -> str:
    """Write the package `name` under `root`, with these modules; returns its name."""
    folder = root / name
    folder.mkdir()
    (folder / "__init__.py").write_text('"""A team\'s journeys."""\n')
    for module, source in modules.items():
        (folder / f"{module}.py").write_text(textwrap.dedent(source))
    return name


def journeys(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the `journeys` command with `env` over the test's own, in the repository's folder."""
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "JOURNEYS_DATABASE_URL": f"sqlite:///{tmp_path / 'journeys.db'}",
        "JOURNEYS_METRICS_ADDRESS": "",
        "TEMPORAL_ADDRESS": "127.0.0.1:1",  # nothing listens there
        **env,
    }
    return subprocess.run(
        [JOURNEYS, *args], env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def lines(output: str) -> dict[str, list[str]]:
    """`journeys check` output by journey (or module): its statuses, in order."""
    found: dict[str, list[str]] = {}
    for line in output.splitlines():
        where, _, status = line.partition(" ")
        found.setdefault(where, []).append(status.strip())
    return found


def test_check_passes_the_shipped_journeys_and_a_team_package_named_by_its_package(tmp_path):
    shipped = journeys("check", tmp_path=tmp_path)
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    assert lines(shipped.stdout)["cart_recovery"] == ["OK"]

    team = journeys(
        "check",
        tmp_path=tmp_path,
        JOURNEYS_JOURNEY_MODULES='["workflows.journeys", "tests.team_package"]',
        JOURNEYS_TEMPLATES_DIRS=str(TEAM_TEMPLATES),
    )
    assert team.returncode == 0, team.stdout + team.stderr
    found = lines(team.stdout)
    assert found["review_request"] == found["referral_thanks"] == ["OK"]  # both modules
    assert found["cart_recovery"] == ["OK"]

    plain = journeys(  # names as people type them, comma-separated, not JSON
        "check",
        tmp_path=tmp_path,
        JOURNEYS_JOURNEY_MODULES="workflows.journeys, tests.team_package",
        JOURNEYS_TEMPLATES_DIRS=str(TEAM_TEMPLATES),
    )
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert lines(plain.stdout) == found


def test_a_name_that_yields_no_journey_stops_check_and_the_worker_before_it_connects(tmp_path):
    empty = package(tmp_path, "nothing_here", helpers="SHARED = 1\n")
    modules = f'["tests.team_package", "{empty}"]'
    settings = {"JOURNEYS_JOURNEY_MODULES": modules, "JOURNEYS_TEMPLATES_DIRS": str(TEAM_TEMPLATES)}

    checked = journeys("check", tmp_path=tmp_path, **settings)
    assert checked.returncode == 1
    assert lines(checked.stdout)["nothing_here"] == [
        "error: defines no journey (JOURNEYS_JOURNEY_MODULES names it)"
    ]
    assert lines(checked.stdout)["review_request"] == ["OK"]

    for command in ("worker", "list"):
        refused = journeys(command, tmp_path=tmp_path, **settings)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert f"journeys {command}: refusing to start" in refused.stderr
        assert "nothing_here             error: defines no journey" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert refused.stdout == ""  # the worker never announced itself
    assert not (tmp_path / "journeys.db").exists()  # nor migrated the database


def test_a_broken_journey_module_is_named_with_its_class_and_the_problem(tmp_path):
    quiet = QUIET.format(name="quiet")
    broken = package(tmp_path, "broken_team", fine=quiet, no_steps=NO_STEPS)

    checked = journeys("check", tmp_path=tmp_path, JOURNEYS_JOURNEY_MODULES=f'["{broken}"]')
    assert checked.returncode == 1
    assert lines(checked.stdout)["quiet"] == ["OK"]  # the package's other module still loads
    assert (
        "broken_team.no_steps, line 5 error: journey class broken_team.no_steps.NoSteps: "
        "define `async def steps(self) -> None`\n"
    ) in checked.stdout


def test_missing_templates_stop_the_commands_that_render_them(tmp_path):
    team = package(tmp_path, "unwritten", hello=SENDS_HELLO.format(name="hello_team"))
    settings = {"JOURNEYS_JOURNEY_MODULES": f'["{team}"]'}

    checked = journeys("check", tmp_path=tmp_path, **settings)
    assert checked.returncode == 1
    [problem] = lines(checked.stdout)["hello_team"]
    assert problem.startswith("error: no hello_team/ folder in the template folders (")
    refused = journeys("worker", tmp_path=tmp_path, **settings)
    assert refused.returncode == 2 and "no hello_team/ folder" in refused.stderr
    listed = journeys("list", tmp_path=tmp_path, **settings)  # renders nothing: starts
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("hello_team")


# In process: what the check finds in a journey and its templates --------------------------


def test_templates_are_checked_file_by_file_in_the_team_folders_then_the_shipped_one(
    tmp_path, monkeypatch
):
    name = f"t_hello_{uuid.uuid4().hex[:8]}"
    team = package(tmp_path, f"team_{uuid.uuid4().hex[:8]}", hello=SENDS_HELLO.format(name=name))
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = tmp_path / "templates" / name
    folder.mkdir(parents=True)
    (folder / "hello.subject").write_text("Hello {{ user.first_name }\n")
    (folder / "hello.html").write_text('{% extends "_layuot.html" %}\n')
    settings = Settings(journey_modules=[team], templates_dirs=str(tmp_path / "templates"))
    assert sorted(check(settings)) == [
        (name, f"{name}/hello.html uses _layuot.html, which no template folder has"),
        (name, f"{name}/hello.subject, line 1: unexpected '}}'"),
    ]

    (folder / "hello.subject").write_text("Hello {{ user.first_name }}\n")
    (folder / "hello.html").write_text('{% extends "_layout.html" %}\n')  # the shipped one
    assert check(settings) == [(name, "OK")]
    elsewhere = check(settings.model_copy(update={"templates_dirs": "no/such/folder"}))
    assert elsewhere[0] == ("JOURNEYS_TEMPLATES_DIRS", "no folder no/such/folder")
    assert elsewhere[1][1].startswith(f"no {name}/ folder in the template folders (no/such/folder")


def test_event_names_and_waits_are_checked_without_running_the_journey(tmp_path, monkeypatch):
    name = f"t_events_{uuid.uuid4().hex[:8]}"
    blank_goal = f'''
    from datetime import timedelta

    from workflows import Goal, Journey, Trigger


    class Events(Journey):
        name = "{name}"
        trigger = Trigger("Signed Up")
        goal = Goal(" ", within=timedelta(days=1))

        async def steps(self) -> None:
            await self.sleep(timedelta(days=1))
    '''
    listens_string = f'''
    from datetime import timedelta

    from workflows import Journey, Trigger


    class Listens(Journey):
        name = "{name}_listens"
        trigger = Trigger("Signed Up")
        listens = ("Product Removed")  # a string, not a tuple

        async def steps(self) -> None:
            await self.sleep(timedelta(days=1))
    '''
    waits = f'''
    from datetime import timedelta

    from workflows import Journey, Trigger


    class Waits(Journey):
        name = "{name}_waits"
        trigger = Trigger("Signed Up")
        listens = ("Product Removed",)

        async def steps(self) -> None:
            await self.wait_for("Product Removed", timeout=timedelta(days=1))
            await self.wait_for("Order Completed", timeout=timedelta(days=1))
    '''
    team = package(
        tmp_path, f"team_{uuid.uuid4().hex[:8]}", events=blank_goal, listens=listens_string,
        waits=waits,
    )  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path))
    found = check(Settings(journey_modules=[team]), templates=False)
    assert found == [
        (f"{team}.events, line 10", "Goal event names must be non-empty strings: ' '"),
        (f"{team}.listens, line 7", f"journey class {team}.listens.Listens: `listens` must be a "
         "tuple of event names, like (\"Product Removed\",)"),
        (f"{name}_waits", f"{team}.waits, line 14: wait_for('Order Completed') waits for an "
         "event the webhook does not deliver to this journey: add it to `listens`"),
    ]  # fmt: skip
