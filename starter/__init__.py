"""The outside world in: the webhook API, the CLI and the dev stack turn into Temporal calls."""
