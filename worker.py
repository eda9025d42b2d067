"""The worker: runs the journey engine and every activity against one Temporal task queue.

    journeys worker          # against TEMPORAL_ADDRESS (default localhost:7233)

It registers the journey search attributes on startup (idempotently, on any server) so the
Temporal UI can list journeys by name, user, step and group.
"""

from __future__ import annotations

import asyncio
import compileall
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import EntryActivities, RecordingActivities, SendingActivities, Store
from activities.erasure import ErasureActivities
from activities.experiments import ExperimentActivities
from activities.segments import SegmentActivities
from activities.send_time import SendTimeActivities
from activities.sending import DeliveryPolicy
from starter.settings import Settings
from workflows.engine import JourneyWorkflow
from workflows.erasure import EraseUser
from workflows.identity import SEARCH_ATTRIBUTES
from workflows.segment_entry import SegmentEntryWorkflow

log = logging.getLogger("journeys.worker")

# The SDK's activity worker prints every completion, result payload included, at DEBUG: user IDs
# and profile traits would reach the logs of anyone debugging. Its INFO and above still show.
logging.getLogger("temporalio.worker._activity").setLevel(logging.INFO)

ACTIVITY_THREADS = 32


async def ensure_search_attributes(client: Client) -> list[str]:
    """Register any missing journey search attribute; returns the names it added."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for key in SEARCH_ATTRIBUTES
        if key.name not in existing.custom_attributes
    }
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    except RPCError as err:
        if err.status != RPCStatusCode.ALREADY_EXISTS:  # another worker won the race
            raise
    return sorted(missing)


def create_worker(
    client: Client,
    store: Store,
    task_queue: str,
    executor: ThreadPoolExecutor,
    sending: SendingActivities | None = None,
) -> Worker:
    """A worker for the engine and all activities; `executor` runs the database activities.

    `sending` carries the templates, provider and delivery rules (see `sending_from`); without
    it messages go to the local outbox unrendered (the engine's own tests).
    """
    write_bytecode()
    entry, recording = EntryActivities(store), RecordingActivities(store)
    experiments = ExperimentActivities(store)
    segments = SegmentActivities(store, client, task_queue)
    sending = sending or SendingActivities(store)
    send_time = SendTimeActivities(
        store, sending.policy.quiet_hours, sending.policy.default_timezone
    )
    # The suppression list of erased addresses is keyed as the send activity checks it.
    erasure = ErasureActivities(store, client, sending.policy.secret_key)
    return Worker(
        client,
        task_queue=task_queue,
        # On shutdown, let in-flight sends and writes finish rather than cancel them mid-call.
        graceful_shutdown_timeout=timedelta(seconds=15),
        workflows=list(WORKFLOWS),
        activities=[
            entry.enter_journey,
            entry.read_profile,
            recording.record_step,
            recording.record_outcome,
            experiments.assign_variant,
            send_time.best_send_time,
            sending.send_message,
            segments.enter_segment_page,
            erasure.begin,
            erasure.end_journeys,
            erasure.erase_records,
            erasure.delete_histories,
            erasure.finish,
        ],
        activity_executor=executor,
        max_concurrent_activities=ACTIVITY_THREADS,
        workflow_runner=workflow_runner(),
    )


WORKFLOWS = (JourneyWorkflow, SegmentEntryWorkflow, EraseUser)


def write_bytecode() -> None:
    """Compile the modules each new journey workflow imports in its sandbox, once.

    The sandbox runs the engine's and the journey's modules afresh for every workflow it starts;
    without a .pyc (PYTHONDONTWRITEBYTECODE=1, as in many images) Python compiles their source
    each time, which was most of the cost of starting a journey. Up-to-date files are skipped;
    where the folder is read-only it is skipped too, and imports compile as before.
    """
    from workflows import registry

    sandboxed = {"workflows", "workflows.journeys", *(w.__module__ for w in WORKFLOWS)}
    for name in sorted(sandboxed | registry.modules()):
        file = getattr(sys.modules.get(name), "__file__", None)
        if file and file.endswith(".py"):
            compileall.compile_file(file, quiet=2)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The journeys' sandbox; the Replayer (`journeys replay`) uses the same one."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
    )


PASSTHROUGH = (
    "workflows.registry",
    "workflows.errors",
    "workflows.models",
    "workflows.journey",
    "workflows.segments",
    "workflows.identity",
    "workflows.experiments",
    "workflows.carry",
    "workflows.send_time",
)
"""The engine's own modules, loaded once rather than for every new journey workflow.

They hold only constants, classes and pydantic models, and their code runs only through
Temporal's workflow API. Re-running them in each workflow's sandbox (rebuilding the pydantic
models) was most of a worker's CPU when many journeys start. Exact names: a passthrough
module's submodules pass through too, and the journey modules (`workflows.journeys.*`) must
stay in the sandbox, where a wall-clock or random call in `steps` is refused.
"""


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    """The rules every send follows, from JOURNEYS_* settings."""
    from activities.suppression import QuietHours
    from starter.settings import DEVELOPMENT_KEY, signing_key

    secret = signing_key(settings)  # refuses a published key for links that leave this machine
    if secret == DEVELOPMENT_KEY:
        log.warning("JOURNEYS_SECRET_KEY is not set: unsubscribe links use a development key")
    company = {"company_name": settings.company_name}
    if settings.postal_address:
        company["postal_address"] = settings.postal_address
    return DeliveryPolicy(
        from_email=settings.from_email,
        from_name=settings.from_name,
        public_url=settings.public_url,
        secret_key=secret,
        frequency_cap=settings.frequency_cap,
        channel_caps=settings.frequency_caps,
        frequency_window=timedelta(days=settings.frequency_window_days),
        quiet_hours=QuietHours.parse(settings.quiet_hours),
        default_timezone=settings.default_timezone,
        company=company,
        track_clicks=settings.track_clicks,
        track_opens=settings.track_opens,
        consent=settings.consent,
        sms_region=settings.sms_default_region,
    )


def sending_from(settings: Settings, store: Store) -> SendingActivities:
    """The send activity as the settings describe it: templates, provider, rules."""
    from activities.providers import create_provider
    from activities.templates import Renderer

    provider = webhook = None
    if settings.email_provider != "outbox":
        provider = create_provider(provider_config(settings, settings.email_provider))
    if settings.webhook_url:
        webhook = create_provider(provider_config(settings, "webhook"))
    audience = None
    if settings.mailchimp_api_key or settings.mailchimp_list_id:  # the `audience` channel
        from activities.audiences import mailchimp_audience

        key = settings.mailchimp_api_key
        audience = mailchimp_audience(
            key.get_secret_value() if key else None,
            settings.mailchimp_list_id,
            base_url=settings.mailchimp_base_url,
            status_if_new=settings.mailchimp_status_if_new,
        )
    sms = push = None
    if settings.sms_provider == "twilio":  # the `sms` channel
        from activities.providers.twilio import TwilioSMS

        token = settings.twilio_auth_token
        sms = TwilioSMS(
            account_sid=settings.twilio_account_sid,
            auth_token=token.get_secret_value() if token else None,
            from_number=settings.twilio_from,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            base_url=settings.twilio_base_url,
            status_callback=f"{settings.public_url.rstrip('/')}/v1/sms/twilio/status",
        )
    if settings.push_provider == "fcm":  # the `push` channel
        from activities.providers.fcm import FcmPush

        push = FcmPush(
            credentials_file=settings.fcm_credentials_file,
            project_id=settings.fcm_project_id,
            base_url=settings.fcm_base_url,
            on_unregistered=store.remove_device,
        )
    return SendingActivities(
        store,
        Renderer(settings.template_folders()),
        provider,
        delivery_policy(settings),
        webhook,
        audience,
        sms,
        push,
    )


def provider_config(settings: Settings, provider: str) -> Any:
    """The provider package's config from JOURNEYS_* settings."""
    from activities.providers import ProviderConfig

    return ProviderConfig(
        provider=provider,
        api_key=settings.provider_api_key,
        base_url=settings.provider_base_url,
        smtp_host=settings.smtp_host,
        smtp_port=settings.smtp_port,
        smtp_username=settings.smtp_username,
        smtp_password=settings.smtp_password,
        smtp_tls=settings.smtp_tls,
        webhook_url=settings.webhook_url,
        webhook_secret=settings.webhook_secret,
        activecampaign_account_id=settings.activecampaign_account_id,
        activecampaign_event_key=settings.activecampaign_event_key,
        activecampaign_tracking_url=settings.activecampaign_tracking_url,
        activecampaign_fields=settings.activecampaign_fields,
    )


async def run_worker(stop: asyncio.Event | None = None) -> None:
    """Run a worker from settings until `stop` is set (or forever)."""
    from activities import metrics
    from starter.client import connect
    from starter.schedules import ensure_schedules
    from starter.settings import Settings
    from workflows import registry

    settings = Settings()
    journeys = registry.load_modules(settings.journey_modules)
    store = Store(settings.database_url)
    store.migrate()
    serving_metrics = metrics.serve(settings.metrics_address)  # before connecting: the runtime
    client = await connect(settings)
    added = await ensure_search_attributes(client)
    if added:
        log.info("registered search attributes %s", ", ".join(added))
    scheduled = await ensure_schedules(client, journeys, settings.task_queue)
    if scheduled:
        log.info("segment schedules: %s", ", ".join(scheduled))
    with ThreadPoolExecutor(ACTIVITY_THREADS) as executor:
        worker = create_worker(
            client, store, settings.task_queue, executor, sending_from(settings, store)
        )
        print(
            f"worker: {len(journeys)} journeys ({', '.join(j.name for j in journeys)}) on task "
            f"queue {settings.task_queue!r} at {settings.temporal_address}",
            flush=True,
        )
        if serving_metrics:
            print(f"worker: metrics at http://{settings.metrics_address}/metrics", flush=True)
        async with worker:
            await (stop or asyncio.Event()).wait()
