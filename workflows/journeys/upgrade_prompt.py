"""Upgrade prompt (seed 000, the project tool): a user invites their third collaborator.

At the user's third Invite Sent ever (counted by the webhook's event summaries), an in-app
message suggests the team plan, unless they are on it already. Plan Upgraded within 14 days is
the goal.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from workflows import Event, Goal, Journey, Profile, Trigger


def _not_on_team_plan(event: Event, profile: Profile) -> bool:
    return str(profile.traits.get("plan", "")).lower() != UpgradePrompt.suggested_plan


class UpgradePrompt(Journey):
    name = "upgrade_prompt"
    trigger = Trigger("Invite Sent", nth=3, where=_not_on_team_plan)
    goal = Goal("Plan Upgraded", within=timedelta(days=14))
    holdout = 0.15
    reentry = timedelta(days=90)

    suggested_plan = "team"

    async def steps(self) -> None:
        invitee = self.event.properties.get("invitee_email") if self.event else None
        await self.send(
            "team_plan", channel="in_app", plan=self.suggested_plan, collaborators=3,
            has_invitee=invitee is not None,
        )  # fmt: skip

    @classmethod
    def preview_context(cls, event: dict[str, Any]) -> dict[str, Any]:
        return {"plan": cls.suggested_plan, "collaborators": 3, "has_invitee": False}
