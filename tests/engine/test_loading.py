"""Loading journeys from JOURNEYS_JOURNEY_MODULES, and finding their templates.

A package name loads every module in it; a module name loads that module, as it always has; a
name that loads no journey, or a module that fails, is an error naming it. Templates come from a
team's folders first and the shipped folder last, so a team's package ships only its own.
"""

from __future__ import annotations

import os
import textwrap
import uuid
from pathlib import Path

import pytest

from activities.templates import Renderer
from starter.settings import Settings
from tests.team_package.referral_thanks import ReferralThanks
from tests.team_package.review_request import ReviewRequest
from workflows import registry
from workflows.errors import JourneyLoadError
from workflows.journeys import CartRecovery

TEAM_TEMPLATES = Path(__file__).resolve().parents[1] / "team_package" / "templates"
UNSUBSCRIBE = "https://journeys.test/u/token"


def package(root: Path, **modules: str) -> str:
    """A uniquely named package under `root` with these modules (each test imports its own)."""
    name = f"team_{uuid.uuid4().hex[:8]}"
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    for module, source in modules.items():
        (root / name / f"{module}.py").write_text(textwrap.dedent(source))
    return name


JOURNEY = """
from workflows import Journey, Trigger


class {cls}(Journey):
    name = "{name}"
    trigger = Trigger("Signed Up")

    async def steps(self) -> None: ...
"""


def test_a_package_name_loads_every_journey_module_in_it_and_in_its_subpackages(
    tmp_path, monkeypatch
):
    monkeypatch.syspath_prepend(str(tmp_path))
    first, second = (f"t_{uuid.uuid4().hex[:8]}" for _ in range(2))
    team = package(tmp_path, first=JOURNEY.format(cls="First", name=first))
    (tmp_path / team / "more").mkdir()
    (tmp_path / team / "more" / "__init__.py").write_text("")
    (tmp_path / team / "more" / "second.py").write_text(JOURNEY.format(cls="Second", name=second))
    loaded = registry.load_modules([team])  # nothing imported these modules before
    assert {(j.name, j.__module__) for j in loaded} == {
        (first, f"{team}.first"),
        (second, f"{team}.more.second"),
    }
    assert registry.load_modules(["tests.team_package"]) == [ReferralThanks, ReviewRequest]


def test_module_names_load_as_they_always_have():
    assert registry.load_modules(["tests.team_package.review_request"]) == [ReviewRequest]
    shipped = registry.load_modules(["workflows.journeys"])
    assert CartRecovery in shipped and ReviewRequest not in shipped


def test_a_name_that_loads_no_journey_is_an_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    empty = package(tmp_path, helpers="SHARED = 1\n")
    with pytest.raises(JourneyLoadError) as raised:
        registry.load_modules(["tests.team_package", empty, "tests.team_pakage"])
    assert str(raised.value).splitlines() == [
        "tests.team_pakage: ModuleNotFoundError: No module named 'tests.team_pakage'",
        f"{empty}: defines no journey (JOURNEYS_JOURNEY_MODULES names it)",
    ]


def test_a_broken_module_is_named_with_its_line_and_the_rest_still_loads(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    name = f"t_{uuid.uuid4().hex[:8]}"
    team = package(
        tmp_path,
        fine=f'''
        from workflows import Journey, Trigger


        class Fine(Journey):
            name = "{name}"
            trigger = Trigger("Signed Up")

            async def steps(self) -> None: ...
        ''',
        no_steps="""
        from workflows import Journey, Trigger


        class NoSteps(Journey):
            name = "t_no_steps_here"
            trigger = Trigger("Signed Up")
        """,
    )
    loaded = registry.discover([team])
    assert [journey.name for journey in loaded.journeys] == [name]
    [problem] = loaded.problems
    assert problem.module == f"{team}.no_steps, line 5"  # the class statement
    assert problem.error == (
        f"journey class {team}.no_steps.NoSteps: define `async def steps(self) -> None`"
    )


# Templates ----------------------------------------------------------------------------------


def context(**values: object) -> dict[str, object]:
    user = {"user_id": "u-1", "email": "ada@example.test", "first_name": "Ada"}
    return {"user": user, "event": {}, "unsubscribe_url": UNSUBSCRIBE, **values}


def test_a_team_template_extends_the_shipped_layout():
    renderer = Renderer(Settings(templates_dirs=str(TEAM_TEMPLATES)).template_folders())
    ask = renderer.render("review_request", "ask", context(product={"name": "Velvet sofa"}))
    assert ask.subject == "How do you like the Velvet sofa?"
    assert "Hi Ada, how do you like the Velvet sofa?" in ask.html
    assert f'<a href="{UNSUBSCRIBE}">Unsubscribe</a>' in ask.html  # templates/_layout.html


def test_team_folders_come_first_and_override_a_file_the_shipped_folder_has(tmp_path):
    (tmp_path / "onboarding").mkdir()
    (tmp_path / "onboarding" / "welcome.subject").write_text("Hello from the team\n")
    folders = os.pathsep.join([str(TEAM_TEMPLATES), str(tmp_path)])
    settings = Settings(templates_dirs=folders)
    assert settings.template_folders()[:2] == [TEAM_TEMPLATES, tmp_path]
    welcome = Renderer(settings.template_folders()).render("onboarding", "welcome", context())
    assert welcome.subject == "Hello from the team"  # the team's file
    assert "Welcome to journeys!" in welcome.html  # the shipped one beside it
    assert Renderer(Settings().template_folders()).render(
        "onboarding", "welcome", context()
    ).subject == ("Welcome to journeys, Ada")


def test_one_templates_folder_works_as_before_with_the_shipped_one_behind_it(tmp_path):
    settings = Settings(templates_dir=tmp_path)
    folders = settings.template_folders()
    assert folders[0] == tmp_path and (folders[-1] / "_layout.html").is_file()


def test_two_journeys_of_one_name_are_an_error_naming_both(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    name = f"t_{uuid.uuid4().hex[:8]}"
    journey = f'''
    from workflows import Journey, Trigger


    class Same(Journey):
        name = "{name}"
        trigger = Trigger("Signed Up")

        async def steps(self) -> None: ...
    '''
    team = package(tmp_path, first=journey, second=journey)
    loaded = registry.discover([team])
    assert [j.__module__ for j in loaded.journeys] == [f"{team}.first"]
    [problem] = loaded.problems
    assert problem.module == f"{team}.second, line 5"
    assert problem.error.startswith(f"journey name {name!r} is taken by {team}.first.Same")
