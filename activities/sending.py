"""Sending a message exactly once in effect.

Until real providers arrive the message goes to the local outbox table. The idempotency key is
unique per (journey run, step) and the outbox row, its step record and the run's count are one
transaction: a retried or re-run activity finds the row and reports the earlier send.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from temporalio import activity

from activities.store import JourneyRun, JourneyStepRow, OutboxMessage, Store
from workflows.models import SendRequest, SendResult


class SendingActivities:
    def __init__(self, store: Store) -> None:
        self.store = store

    @activity.defn(name="send_message")
    def send_message(self, request: SendRequest) -> SendResult:
        """Deliver to the outbox once; skip (recorded) when the user has no email address."""
        existing = self._find(request.idempotency_key)
        if existing is not None:
            return SendResult(status="duplicate", message_id=str(existing.id))
        profile = self.store.get_profile(request.user_id)
        if profile is None or not profile.email:
            self._record_step(request, "skipped", "no_address")
            return SendResult(status="skipped", reason="no_address")
        with self.store.session() as session:
            run = session.get(JourneyRun, request.run_id)  # before adding: get() autoflushes
            message = OutboxMessage(
                idempotency_key=request.idempotency_key,
                run_id=request.run_id,
                journey=request.journey,
                user_id=request.user_id,
                template=request.template,
                recipient=profile.email,
                context=request.context,
                journey_time=request.at,
            )
            session.add(message)
            session.add(self._step(request, "sent", None))
            if run is not None:
                run.messages_sent += 1
                session.add(run)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                existing = self._find(request.idempotency_key)
                if existing is None:
                    raise
                return SendResult(status="duplicate", message_id=str(existing.id))
            return SendResult(status="sent", message_id=str(message.id))

    def _find(self, key: str) -> OutboxMessage | None:
        with self.store.session() as session:
            return session.exec(
                select(OutboxMessage).where(OutboxMessage.idempotency_key == key)
            ).first()

    def _record_step(self, request: SendRequest, status: str, detail: str | None) -> None:
        self.store.insert_once(self._step(request, status, detail))

    @staticmethod
    def _step(request: SendRequest, status: str, detail: str | None) -> JourneyStepRow:
        return JourneyStepRow(
            run_id=request.run_id,
            seq=request.seq,
            kind="send",
            name=request.template,
            status=status,
            at=request.at,
            detail=detail,
        )
