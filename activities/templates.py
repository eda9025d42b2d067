"""Rendering a journey step's message from its templates, safely.

Each step has up to three files in `templates/<journey>/`:

    <step>.subject   the subject line (plain text, one line)
    <step>.html      the HTML body (autoescaped: event properties may carry HTML)
    <step>.txt       the plain-text body (optional; without it the text part says so plainly)

Jinja2 runs sandboxed (templates cannot reach Python internals) with StrictUndefined, so a
missing variable is an error at render time and a broken email is never sent. HTML templates
may extend `templates/_layout.html`, which carries the unsubscribe link and postal address.
The context: `user` (profile traits, email included), `event` (the entry event's properties),
the journey's own values passed to `send(...)`, `journey`, `step` and `unsubscribe_url`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel


class TemplateRenderError(Exception):
    """A step's templates are missing or do not render with this context; nothing is sent."""


class RenderedMessage(BaseModel):
    """A message ready for a provider: subject, HTML and text."""

    subject: str
    html: str
    text: str


class Renderer:
    """Finds and renders step templates under one folder (cached, so each renders fast)."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.env = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader(self.folder),
            undefined=StrictUndefined,
            autoescape=lambda name: name is not None and name.endswith(".html"),
            keep_trailing_newline=False,
            trim_blocks=True,  # `{% for %}` lines leave no blank lines in the text part
            lstrip_blocks=True,
            auto_reload=True,
        )

    def render(self, journey: str, step: str, context: dict[str, Any]) -> RenderedMessage:
        """Render subject, HTML and text, or raise TemplateRenderError saying what is wrong."""
        where = f"templates/{journey}/{step}"
        try:
            subject = self._one(f"{journey}/{step}.subject", context)
            html = self._one(f"{journey}/{step}.html", context)
            try:
                text = self._one(f"{journey}/{step}.txt", context)
            except TemplateNotFound:
                text = "This message is best read as HTML."
        except TemplateNotFound as err:
            raise TemplateRenderError(f"{where}: missing template {err.name}") from err
        except TemplateError as err:
            raise TemplateRenderError(f"{where}: {type(err).__name__}: {err}") from err
        except (ArithmeticError, LookupError, TypeError, ValueError) as err:
            # The template's own expression failed ({{ 1/0 }}, a range the sandbox caps, a str
            # plus an int): as deterministic as a missing variable, so a retry would fail again.
            raise TemplateRenderError(f"{where}: {type(err).__name__}: {err}") from err
        subject = " ".join(subject.split())  # one line: no header injection through a subject
        if not subject:
            raise TemplateRenderError(f"{where}: the subject renders empty")
        return RenderedMessage(subject=subject, html=html, text=text)

    def _one(self, name: str, context: dict[str, Any]) -> str:
        return self.env.get_template(name).render(context).strip()
