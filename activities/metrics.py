"""The worker's Prometheus endpoint: the Temporal SDK's metrics, and our counters beside them.

`serve` makes the process's Temporal runtime export on JOURNEYS_METRICS_ADDRESS (the worker's
task slots, polls, activity and workflow latencies and failures). Our counters go through the
activity's SDK meter, so they land on the same endpoint with its namespace, task queue and
activity type attached:

    journeys_messages_sent_total{journey, channel}
    journeys_messages_skipped_total{journey, channel, reason}   paused, no_consent, stale, ...
    journeys_messages_failed_total{journey, channel, reason}    template_error, provider_refused
    journeys_messages_deferred_total{journey, channel, reason}  quiet_hours
    journeys_journeys_entered_total{journey, group}             treatment or holdout

Each counts once per message or entry (a retried activity that finds the work done adds
nothing). Labels are names, channels and reasons: never a user ID or an address.
"""

from __future__ import annotations

import logging

from temporalio import activity
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from workflows.models import SendRequest, SendResult

log = logging.getLogger("journeys.metrics")

SEND_COUNTERS = {
    "sent": ("journeys_messages_sent_total", "Messages delivered (or handed to the provider)."),
    "skipped": ("journeys_messages_skipped_total", "Messages not sent, by reason."),
    "failed": ("journeys_messages_failed_total", "Messages that could not be sent, by reason."),
    "deferred": ("journeys_messages_deferred_total", "Sends put off until later, by reason."),
}
ENTERED = ("journeys_journeys_entered_total", "Users entering a journey, by holdout group.")


def serve(address: str) -> bool:
    """Serve Prometheus metrics at http://`address`/metrics from every Temporal client this
    process connects after this call; False when `address` is empty or cannot be bound (the
    worker runs on without metrics rather than not at all)."""
    if not address:
        return False
    try:
        runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    except ValueError as err:  # "Address already in use", a malformed address
        log.warning("no metrics endpoint on %s: %s", address, err)
        return False
    Runtime.set_default(runtime, error_if_already_set=False)
    return True


def count_send(request: SendRequest, result: SendResult) -> None:
    """Count a send activity's outcome; a duplicate (already counted) adds nothing."""
    counter = SEND_COUNTERS.get(result.status)
    if counter is None:
        return
    labels = {"journey": request.journey, "channel": request.channel}
    if result.status != "sent":
        labels["reason"] = result.reason or "unknown"
    _add(*counter, labels)


def count_entry(journey: str, group: str) -> None:
    """Count a user entering `journey` in `group`, once per journey run."""
    _add(*ENTERED, {"journey": journey, "group": group})


def _add(name: str, description: str, labels: dict[str, str]) -> None:
    if not activity.in_activity():  # called directly (tests, tools): nothing to report to
        return
    try:
        meter = activity.metric_meter()
    except RuntimeError:  # a process-pool activity has no meter
        return
    meter.create_counter(name, description).add(1, labels)
