"""Rendering a journey step's message from its templates, safely.

Each step has up to three files in `<journey>/` in one of the template folders:

    <step>.subject   the subject line (plain text, one line)
    <step>.html      the HTML body (autoescaped: event properties may carry HTML)
    <step>.txt       the plain-text body (optional; without it the text part says so plainly)

Jinja2 runs sandboxed (templates cannot reach Python internals) with StrictUndefined, so a
missing variable is an error at render time and a broken email is never sent. HTML templates
may extend `_layout.html`, which carries the unsubscribe link and postal address.

Text messages and push notifications have their own, shorter files (`render_for`):

    <step>.sms.txt     the text of an SMS (plain text; at most 1,600 characters, Twilio's limit)
    <step>.push.txt    a push notification's body (plain text)
    <step>.push.title  its title (optional: the step's `.subject` otherwise)

The folders are searched in order (a team's JOURNEYS_TEMPLATES_DIRS first, the shipped
`templates/` last; see `Settings.template_folders`): a team's package ships only its own
journeys' templates and still extends the shipped layout, and a file at a shipped path replaces
just that file.

The context: `user` (profile traits, email included), `event` (the entry event's properties),
the journey's own values passed to `send(...)`, `journey`, `step` and `unsubscribe_url`, and
`activity(*events, days=)`: the user's counts and last times of events (activities/analytics.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    meta,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel

from activities.analytics import no_activity

SMS_MAX_CHARACTERS = 1600
"""Twilio refuses a longer Body (error 21617); carriers split it into up to ten segments."""
PUSH_MAX_BYTES = 3500
"""FCM refuses a message over 4,096 bytes; this leaves room for the data payload."""


class TemplateRenderError(Exception):
    """A step's templates are missing or do not render with this context; nothing is sent."""


@contextmanager
def _failures(where: str) -> Iterator[None]:
    """Any failure to render, as a TemplateRenderError naming the step's templates."""
    try:
        yield
    except TemplateNotFound as err:
        raise TemplateRenderError(f"{where}: missing template {err.name}") from err
    except TemplateError as err:
        raise TemplateRenderError(f"{where}: {type(err).__name__}: {err}") from err
    except (ArithmeticError, LookupError, TypeError, ValueError) as err:
        # The template's own expression failed ({{ 1/0 }}, a range the sandbox caps, a str
        # plus an int): as deterministic as a missing variable, so a retry would fail again.
        raise TemplateRenderError(f"{where}: {type(err).__name__}: {err}") from err


class RenderedMessage(BaseModel):
    """A message ready for a provider: subject, HTML and text."""

    subject: str
    html: str
    text: str


class Renderer:
    """Finds and renders step templates in one folder or several, the first that has a file
    winning (cached, so each renders fast)."""

    def __init__(self, folders: Path | str | Sequence[Path | str]) -> None:
        self.folders = (
            [Path(folders)] if isinstance(folders, Path | str) else list(map(Path, folders))
        )
        self.env = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader(self.folders),
            undefined=StrictUndefined,
            autoescape=lambda name: name is not None and name.endswith(".html"),
            keep_trailing_newline=False,
            trim_blocks=True,  # `{% for %}` lines leave no blank lines in the text part
            lstrip_blocks=True,
            auto_reload=True,
        )
        # Zero for everything unless the context brings a user's (activities/analytics.py).
        self.env.globals["activity"] = no_activity

    def render(
        self, journey: str, step: str, context: dict[str, Any], variant: str | None = None
    ) -> RenderedMessage:
        """Render subject, HTML and text, or raise TemplateRenderError saying what is wrong.

        `variant`: an A/B/n variant's own part (`<step>.<variant>.subject`) is used where it
        exists, the step's otherwise, so a subject-line test needs one file per variant."""
        where = f"templates/{journey}/{step}"
        with _failures(where):
            subject = self._one(self._part(journey, step, variant, "subject"), context)
            html = self._one(self._part(journey, step, variant, "html"), context)
            try:
                text = self._one(self._part(journey, step, variant, "txt"), context)
            except TemplateNotFound:
                text = "This message is best read as HTML."
        subject = " ".join(subject.split())  # one line: no header injection through a subject
        if not subject:
            raise TemplateRenderError(f"{where}: the subject renders empty")
        return RenderedMessage(subject=subject, html=html, text=text)

    def render_for(
        self,
        channel: str,
        journey: str,
        step: str,
        context: dict[str, Any],
        variant: str | None = None,
    ) -> RenderedMessage:
        """The message for one channel: email and in-app render all three parts (`render`);
        SMS only its text (subject and HTML empty); push a title and a body."""
        if channel not in ("sms", "push"):
            return self.render(journey, step, context, variant)
        where = f"templates/{journey}/{step}"
        with _failures(where):
            body = self._one(self._part(journey, step, variant, f"{channel}.txt"), context)
            title = ""
            if channel == "push":
                named = self._part(journey, step, variant, "push.title")
                if not self._exists(named):
                    named = self._part(journey, step, variant, "subject")
                title = " ".join(self._one(named, context).split())
        if not body:
            raise TemplateRenderError(f"{where}: the {channel} text renders empty")
        if channel == "sms" and len(body) > SMS_MAX_CHARACTERS:
            raise TemplateRenderError(
                f"{where}: the SMS renders {len(body)} characters, over {SMS_MAX_CHARACTERS}"
            )
        if channel == "push" and len((title + body).encode()) > PUSH_MAX_BYTES:
            raise TemplateRenderError(f"{where}: the push is over {PUSH_MAX_BYTES} bytes")
        return RenderedMessage(subject=title, html="", text=body)

    def _part(self, journey: str, step: str, variant: str | None, suffix: str) -> str:
        """The template file for one part: the variant's own where it exists, else the step's."""
        if variant and self._exists(f"{journey}/{step}.{variant}.{suffix}"):
            return f"{journey}/{step}.{variant}.{suffix}"
        return f"{journey}/{step}.{suffix}"

    def _one(self, name: str, context: dict[str, Any]) -> str:
        return self.env.get_template(name).render(context).strip()

    def check(
        self,
        journey: str,
        steps: Iterable[str] | dict[str, set[str]],
        *,
        sends: bool = True,
    ) -> list[str]:
        """What would make these steps' sends fail, found without rendering: a missing folder
        or file, a syntax error, a template extended or included that no folder has.

        `steps`: step names, or {step: the channels it may go by} (email and in-app need the
        subject and HTML, SMS `.sms.txt`, push `.push.txt`). `sends`: the journey sends at all
        (so `<journey>/` must exist) even when the step names are not known; variables cannot
        be checked before there is a context.
        """
        if sends and not any((folder / journey).is_dir() for folder in self.folders):
            where = ", ".join(map(str, self.folders))
            hint = "JOURNEYS_TEMPLATES_DIRS adds folders"
            return [f"no {journey}/ folder in the template folders ({where}; {hint})"]
        by_step = steps if isinstance(steps, dict) else {step: {"email"} for step in steps}
        problems: list[str] = []
        loader: Any = self.env.loader
        for step in sorted(by_step):
            needed: dict[str, bool] = {}  # suffix: required
            for channel in by_step[step]:
                if channel in ("sms", "push"):
                    needed[f"{channel}.txt"] = True
                else:
                    needed.update({"subject": True, "html": True, "txt": False})
            for suffix, required in sorted(needed.items()):
                name = f"{journey}/{step}.{suffix}"
                try:
                    source, filename, _ = loader.get_source(self.env, name)
                except TemplateNotFound:
                    if required:
                        problems.append(f"{name} is missing")
                    continue
                try:
                    parsed = self.env.parse(source, name, filename)
                except TemplateSyntaxError as err:
                    problems.append(f"{name}, line {err.lineno}: {err.message}")
                    continue
                for used in meta.find_referenced_templates(parsed):
                    if used is not None and not self._exists(used):
                        problems.append(f"{name} uses {used}, which no template folder has")
        return problems

    def _exists(self, name: str) -> bool:
        loader: Any = self.env.loader
        try:
            loader.get_source(self.env, name)
        except TemplateNotFound:
            return False
        return True
