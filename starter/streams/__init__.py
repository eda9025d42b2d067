"""Events from message brokers, through the same ingestion as the HTTP API (docs/streams.md).

`consumer` decides, whatever the broker: take a message (ack), set it aside (dead letter), or
keep it while ingestion is unavailable. `rabbitmq` is the broker-specific part; `command` wires
them for `journeys consume` and `journeys dev`.
"""

from starter.streams.consumer import (
    Abandoned,
    DeadLetter,
    Decision,
    Pause,
    StreamConsumer,
    Taken,
    message_key,
    read,
)

__all__ = [
    "Abandoned",
    "DeadLetter",
    "Decision",
    "Pause",
    "StreamConsumer",
    "Taken",
    "message_key",
    "read",
]
