"""What the compose stacks' check scripts share (stdlib only): integration.py (docker-compose.yml)
and cluster.py (docker-compose.cluster.yml) run in a `tests` container with this directory
mounted at /opt/tests, so they import this module as a sibling (``import checks``).

A script registers its checks in order with a `Checks` object, waits for banners and reads
sockets with the functions below, and ends with `Checks.run`: one ``name: ok|FAIL`` line per
check, then the bare ``N passed, N failed`` line tests/test_compose.py looks for.
"""

from __future__ import annotations

import re
import socket
import sys
import time
import traceback
from collections.abc import Callable

Check = Callable[[], None]


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Checks:
    """The checks of one script, run in the order they were registered."""

    def __init__(self) -> None:
        self.registered: list[tuple[str, Check]] = []

    def __call__(self, name: str) -> Callable[[Check], Check]:
        """``@check("name")``: register the function as the next check."""

        def register(fn: Check) -> Check:
            self.registered.append((name, fn))
            return fn

        return register

    def run(self) -> int:
        """Run every check (a failure is reported with its traceback, then counted); the exit
        status: 1 when any failed."""
        passed = failed = 0
        for name, fn in self.registered:
            started = time.monotonic()
            try:
                fn()
            except Exception:  # noqa: BLE001 - every failure is reported, then counted
                say(f"{name}: FAIL")
                traceback.print_exc(file=sys.stdout)
                failed += 1
            else:
                say(f"{name}: ok ({time.monotonic() - started:.2f} s)")
                passed += 1
        say(f"{passed} passed, {failed} failed")
        return 1 if failed else 0


def wait_for_banner(host: str, port: int, prefix: bytes, within: float) -> bytes:
    """Connect until the server's first line starts with ``prefix`` (bounded by ``within``
    seconds): the scripts' own wait, so the stacks work where compose ignores
    service_healthy."""
    deadline = time.monotonic() + within
    last: object = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=3) as sock:
                line = sock.makefile("rb").readline(4096)
            if line.startswith(prefix):
                return line
            last = line
        except OSError as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"{host}:{port} gave no {prefix!r} within {within} s: {last!r}")


def read_until(sock: socket.socket, pattern: bytes, timeout: float) -> bytes:
    """Read until ``pattern`` (a regex) matches what arrived; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    data = b""
    while not re.search(pattern, data):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {pattern!r} within {timeout} s; got {data!r}")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed waiting for {pattern!r}; got {data!r}")
        data += chunk
    return data
