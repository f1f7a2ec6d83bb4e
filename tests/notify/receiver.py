"""A real HTTP receiver for webhook tests: http.server on 127.0.0.1:0 in a thread.

It answers from a script (a status and headers per request, in order; then 200), records
every request, and can hold its answers until released (to fill the webhook's queue).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: A script entry: a status with its headers, or DROP (close without answering).
DROP = 0


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def events(self) -> list[dict[str, Any]]:
        """The events of a body, batch or not."""
        data = self.json()
        return list(data["events"]) if "events" in data else [data]


@dataclass
class Receiver:
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)  # answered 2xx or not
    attempts: int = 0  # every request seen, dropped ones too
    hold: threading.Event = field(default_factory=threading.Event)  # set: answer

    def __post_init__(self) -> None:
        self.hold.set()
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._cond:
                    receiver.attempts += 1
                    status, headers = receiver.script.pop(0) if receiver.script else (200, {})
                    receiver._cond.notify_all()
                receiver.hold.wait(30)
                if status == DROP:
                    self.close_connection = True
                    return
                with receiver._cond:
                    receiver.requests.append(
                        Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    receiver._cond.notify_all()
                with contextlib.suppress(OSError):  # a client that gave up (a timeout test)
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "2")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hook?k=1"

    def close(self) -> None:
        self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def wait(self, count: int, timeout: float = 15.0) -> list[Request]:
        """The first ``count`` recorded requests, waiting for them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.requests)} of {count} requests")
                self._cond.wait(left)
            return list(self.requests[:count])

    def wait_attempts(self, count: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.attempts < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.attempts} of {count} attempts")
                self._cond.wait(left)

    def events(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Wait until the recorded requests hold ``count`` events; return them in order."""
        deadline = time.monotonic() + timeout
        while True:
            out = [e for r in self.wait(len(self.requests) or 1, timeout) for e in r.events()]
            if len(out) >= count:
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(out)} of {count} events")
            with self._cond:
                self._cond.wait(min(left, 0.5))
