"""A stand-in for Postmark's send API that counts what it receives, for the exactly-once check.

    .venv/bin/python -m bench.esp --port 8025 --hold 2.0

`POST /email` (what `activities/providers/postmark.py` sends) is counted the moment its body
has arrived, by the idempotency key in its Metadata, as a real provider would have the message
then; the answer (200, `ErrorCode` 0) comes `--hold` seconds later, so a worker killed in those
seconds dies mid-send. Like Postmark, it does not dedupe: a second request with the same key is
a second email, and is counted. `GET /deliveries` answers {"received": {key: count},
"in_flight": n}. Runs as its own process, so the load generator's CPU is not spent on it.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Deliveries:
    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.received: dict[str, int] = {}
        self.in_flight = 0
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body: Any = json.loads(self.rfile.read(length) or b"{}")
        key = str((body.get("Metadata") or {}).get("idempotency_key", ""))
        state = self.server.deliveries
        with state.lock:
            state.received[key] = state.received.get(key, 0) + 1
            state.in_flight += 1
        try:
            time.sleep(state.hold)
            self._answer({"ErrorCode": 0, "Message": "OK", "MessageID": str(uuid.uuid4())})
        finally:
            with state.lock:
                state.in_flight -= 1

    def do_GET(self) -> None:
        state = self.server.deliveries
        with state.lock:
            answer = {"received": dict(state.received), "in_flight": state.in_flight}
        self._answer(answer)

    def _answer(self, answer: dict[str, Any]) -> None:
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, port: int, hold: float) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.deliveries = Deliveries(hold)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a worker killed mid-send drops its connection: expected here


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hold", type=float, default=2.0, help="seconds before each answer")
    args = parser.parse_args()
    server = Server(args.port, args.hold)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
