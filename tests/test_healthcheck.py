"""`imapd healthcheck` (the image's HEALTHCHECK): 0 for a server greeting `* OK`, else 1."""

from __future__ import annotations

import socket
import threading

import pytest

from imapd.cli import main
from tests.helpers.server import RunningServer


def test_healthy_server(server: RunningServer) -> None:
    assert main(["healthcheck", "--host", server.host, "--port", str(server.port)]) == 0


def test_nothing_listening(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["healthcheck", "--port", str(port), "--timeout", "1"]) == 1
    assert f"127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize("greeting", [b"* BYE busy\r\n", b"", None])
def test_wrong_or_no_greeting(greeting: bytes | None) -> None:
    """A BYE, a closed connection, or silence past --timeout are all unhealthy."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                if greeting is not None:
                    conn.sendall(greeting)
                else:
                    conn.recv(1)  # until the client gives up

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        code = main(["healthcheck", "--port", str(port), "--timeout", "0.5"])
        thread.join(5)
    assert code == 1


def test_port_from_imapd_listen(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a container IMAPD_LISTEN says where the server is; a wildcard host is probed on
    loopback."""
    monkeypatch.setenv("IMAPD_LISTEN", f"0.0.0.0:{server.port}")
    assert main(["healthcheck"]) == 0
