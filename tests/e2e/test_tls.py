"""TLS: implicit TLS on ``listen_tls`` and STARTTLS (RFC 3501 §6.2.1, RFC 2595, RFC 8314),
with the ssl module, imapclient and ``openssl s_client``; the STARTTLS injection defence;
LOGINDISABLED before TLS; TLS 1.2+ only; COMPRESS over TLS; events' ``service`` "imaps";
SIGHUP reload of the certificate in a real ``python -m imapd serve`` process."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import imapclient
import pytest

from imapd.tls import ServerTls
from tests.e2e.messages import SIMPLE
from tests.e2e.process import free_port, imapd
from tests.e2e.tls_certs import Cert, make_cert, require_openssl
from tests.helpers.deflate import DeflateClient
from tests.helpers.server import PASSWORD, RunningServer
from tests.notify.listener import Listener
from tests.rawclient import RawClient


@pytest.fixture
def cert(tmp_path: Path) -> Cert:
    return make_cert(tmp_path / "tls")


@pytest.fixture
def tls_server(server_factory: Any, cert: Cert) -> RunningServer:
    """STARTTLS on the plain port, implicit TLS on another; plaintext login only over TLS."""
    running: RunningServer = server_factory(
        tls_cert_file=cert.cert,
        tls_key_file=cert.key,
        listen_tls=("127.0.0.1", 0),
        allow_plaintext_login=False,
    )
    running.add_user("alice")
    return running


def tls_port(server: RunningServer) -> int:
    return int(server.server.tls_addresses[0][1])


def tls_raw(server: RunningServer, context: ssl.SSLContext) -> RawClient:
    sock = socket.create_connection((server.host, tls_port(server)), timeout=10)
    return RawClient(context.wrap_socket(sock, server_hostname="127.0.0.1"))


def capabilities(line: str) -> set[str]:
    """The capability names in a CAPABILITY response or a [CAPABILITY ...] code."""
    text = line.split("CAPABILITY", 1)[1].split("]", 1)[0]
    return set(text.split())


# --- implicit TLS -------------------------------------------------------------------------


def test_implicit_tls_handshake_with_the_ssl_module(tls_server: RunningServer, cert: Cert) -> None:
    raw = tls_raw(tls_server, cert.client_context())
    assert isinstance(raw.sock, ssl.SSLSocket)
    assert raw.sock.version() in {"TLSv1.2", "TLSv1.3"}
    assert raw.sock.getpeercert(binary_form=True) == cert.der
    greeting = raw.response()
    assert greeting.startswith("* OK [CAPABILITY ")
    caps = capabilities(greeting)
    # Over TLS: plaintext mechanisms allowed even with allow_plaintext_login = false
    assert "AUTH=PLAIN" in caps
    assert "LOGINDISABLED" not in caps
    assert "STARTTLS" not in caps
    assert raw.command("s", "STARTTLS")[-1] == "s BAD TLS is active already"
    assert raw.command("l", f"LOGIN alice {PASSWORD}")[-1].startswith("l OK")
    raw.close()


def test_imapclient_over_implicit_tls(tls_server: RunningServer, cert: Cert) -> None:
    c = imapclient.IMAPClient(
        "127.0.0.1",
        port=tls_port(tls_server),
        ssl=True,
        ssl_context=cert.client_context(),
        timeout=10,
    )
    c.login("alice", PASSWORD)
    c.append("INBOX", SIMPLE)
    c.select_folder("INBOX")
    assert c.search() == [1]
    assert c.fetch([1], ["RFC822"])[1][b"RFC822"] == SIMPLE
    c.logout()


@pytest.mark.parametrize(
    ("version", "accepted"),
    [
        (ssl.TLSVersion.TLSv1_1, False),
        (ssl.TLSVersion.TLSv1_2, True),
        (ssl.TLSVersion.TLSv1_3, True),
    ],
)
def test_only_tls_1_2_and_later(
    tls_server: RunningServer, cert: Cert, version: ssl.TLSVersion, accepted: bool
) -> None:
    context = cert.client_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # SECLEVEL=0: our own OpenSSL would otherwise refuse to offer TLS 1.1 at all
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.warns(DeprecationWarning) if version < ssl.TLSVersion.TLSv1_2 else nullcontext():
        context.minimum_version = context.maximum_version = version
    sock = socket.create_connection((tls_server.host, tls_port(tls_server)), timeout=10)
    if not accepted:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            context.wrap_socket(sock).recv(100)
        sock.close()
        return
    with context.wrap_socket(sock) as tls:
        assert tls.version() == version.name.replace("v1_", "v1.")
        assert tls.recv(4) == b"* OK"


def test_openssl_s_client_refuses_tls_1_1(tls_server: RunningServer) -> None:
    openssl = require_openssl()
    result = subprocess.run(
        [
            openssl,
            "s_client",
            "-connect",
            f"127.0.0.1:{tls_port(tls_server)}",
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "New, (NONE), Cipher is (NONE)" in result.stdout  # no session was established


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_openssl_s_client(tls_server: RunningServer, cert: Cert, mode: str) -> None:
    openssl = require_openssl()
    port = tls_port(tls_server) if mode == "implicit" else tls_server.port
    args = [
        openssl,
        "s_client",
        "-connect",
        f"127.0.0.1:{port}",
        "-CAfile",
        str(cert.cert),
        "-verify_return_error",
        "-verify_ip",
        "127.0.0.1",
        "-crlf",
        "-ign_eof",
    ]
    if mode == "starttls":
        args += ["-starttls", "imap"]  # needs STARTTLS in the capabilities to go on
    result = subprocess.run(
        args,
        input=f"a LOGIN alice {PASSWORD}\nb LOGOUT\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Verify return code: 0 (ok)" in result.stdout
    assert any(f"Protocol  : {v}" in result.stdout for v in ("TLSv1.2", "TLSv1.3"))
    assert "a OK" in result.stdout and "* BYE" in result.stdout


def test_garbage_on_the_tls_port_is_dropped_quietly(tls_server: RunningServer) -> None:
    """A plaintext client on the TLS port: the handshake fails, the server logs no error
    (the fixture fails on one) and goes on serving."""
    with socket.create_connection((tls_server.host, tls_port(tls_server)), timeout=10) as s:
        s.sendall(b"a LOGIN alice secret\r\n" * 20)
        s.settimeout(10)
        with pytest.raises(ConnectionError):
            while s.recv(4096):
                pass
            raise ConnectionResetError("closed")


# --- STARTTLS -----------------------------------------------------------------------------


def test_imapclient_starttls_logindisabled_before_auth_plain_after(
    tls_server: RunningServer, cert: Cert
) -> None:
    c = imapclient.IMAPClient("127.0.0.1", port=tls_server.port, ssl=False, timeout=10)
    before = set(c.capabilities())
    assert {b"STARTTLS", b"LOGINDISABLED"} <= before
    assert b"AUTH=PLAIN" not in before
    with pytest.raises(imapclient.exceptions.LoginError, match="PRIVACYREQUIRED"):
        c.login("alice", PASSWORD)
    c.starttls(cert.client_context())
    after = set(c.capabilities())
    assert b"AUTH=PLAIN" in after
    assert not {b"STARTTLS", b"LOGINDISABLED"} & after
    c.login("alice", PASSWORD)
    c.select_folder("INBOX")
    c.logout()


@pytest.mark.parametrize("split", [False, True], ids=["one-write", "two-writes"])
def test_starttls_injection_is_not_run(tls_server: RunningServer, cert: Cert, split: bool) -> None:
    """CVE-2011-0411 style: a command pipelined after STARTTLS in the clear must not be
    answered after the handshake (as if the client had sent it over TLS).

    In one write the server has both lines before it answers: it drops the second and the
    handshake succeeds. In two writes the second may also arrive after the switch, where it
    is the start of the TLS stream and the handshake fails: safe too, the connection ends."""
    raw = RawClient.connect(tls_server.host, tls_server.port)
    assert raw.response().startswith("* OK")
    raw.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if split:
        raw.send(b"a STARTTLS\r\n")
        raw.send(b"b CAPABILITY\r\n")
    else:
        raw.send(b"a STARTTLS\r\nb CAPABILITY\r\n")
    assert raw.response() == "a OK Begin TLS negotiation now"
    assert raw.buf == b""
    try:
        wrapped = cert.client_context().wrap_socket(raw.sock, server_hostname="127.0.0.1")
    except (ssl.SSLError, ConnectionError):
        if not split:
            raise
        return  # the plaintext went into the handshake, which failed
    tls = RawClient(wrapped)
    # The fresh session: nothing owed, and the next tagged reply is ours, not b's.
    assert tls.command("c", "NOOP") == ["c OK NOOP completed"]
    assert b"b " not in tls.quiet(0.3)
    caps = tls.command("d", "CAPABILITY")
    assert "STARTTLS" not in capabilities(caps[0])
    tls.close()


def test_starttls_refused_after_login_after_compress_and_twice(
    tls_server: RunningServer, cert: Cert
) -> None:
    # After STARTTLS: a second one is BAD
    raw = RawClient.connect(tls_server.host, tls_server.port)
    raw.response()
    assert raw.command("a", "STARTTLS") == ["a OK Begin TLS negotiation now"]
    tls = RawClient(cert.client_context().wrap_socket(raw.sock, server_hostname="127.0.0.1"))
    assert tls.command("b", "STARTTLS") == ["b BAD TLS is active already"]
    # After login (RFC 3501 §6.2.1: not-authenticated state only), and under COMPRESS
    assert tls.command("c", f"LOGIN alice {PASSWORD}")[-1].startswith("c OK")
    assert tls.command("d", "STARTTLS") == ["d BAD Command not allowed in this state"]
    assert tls.command("e", "COMPRESS DEFLATE") == ["e OK DEFLATE active"]
    z = DeflateClient(tls)
    assert z.command("f", b"STARTTLS") == [b"f BAD Command not allowed in this state"]
    assert z.command("g", b"NOOP") == [b"g OK NOOP completed"]
    tls.close()


def test_starttls_without_a_certificate_is_bad_and_not_advertised(
    server: RunningServer,
) -> None:
    raw = RawClient.connect(server.host, server.port)
    assert "STARTTLS" not in capabilities(raw.response())
    assert raw.command("a", "STARTTLS") == [
        "a BAD STARTTLS is not available: no certificate is configured"
    ]
    raw.close()


def test_compress_over_implicit_tls(tls_server: RunningServer, cert: Cert) -> None:
    raw = tls_raw(tls_server, cert.client_context())
    raw.login("alice", PASSWORD)
    assert raw.command("z", "COMPRESS DEFLATE") == ["z OK DEFLATE active"]
    z = DeflateClient(raw)
    body = SIMPLE + b"over TLS and DEFLATE " * 2000 + b"\r\n"
    z.send(b"a APPEND INBOX {%d+}\r\n" % len(body) + body + b"\r\n")
    out: list[bytes] = []
    while not out or not out[-1].startswith(b"a "):
        out.append(z.response())
    assert out[-1].startswith(b"a OK [APPENDUID ")
    assert z.command("b", b"SELECT INBOX")[-1].startswith(b"b OK")
    fetched = z.command("c", b"FETCH 1 BODY.PEEK[]")
    assert fetched[0].endswith(body + b")")
    raw.sock.close()


# --- events -------------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[Listener]:
    lis = Listener()
    yield lis
    lis.cleanup()


def test_events_service_is_imaps_on_the_tls_port(
    server_factory: Any, cert: Cert, listener: Listener
) -> None:
    running: RunningServer = server_factory(
        tls_cert_file=cert.cert,
        tls_key_file=cert.key,
        listen_tls=("127.0.0.1", 0),
        notify_socket=listener.path,
    )
    running.add_user("alice")
    listener.take(6)  # the new user's MailboxCreate events
    c = imapclient.IMAPClient(
        "127.0.0.1", port=tls_port(running), ssl=True, ssl_context=cert.client_context(), timeout=10
    )
    c.login("alice", PASSWORD)
    login = listener.until("Login")[-1]
    assert login["service"] == "imaps"
    c.append("INBOX", SIMPLE)
    assert listener.until("MessageAppend")[-1]["service"] == "imaps"
    c.logout()
    assert listener.until("Logout")[-1]["service"] == "imaps"
    # STARTTLS keeps "imap", as Cyrus does (the service is the listener's, cyrus.conf)
    c = imapclient.IMAPClient("127.0.0.1", port=running.port, ssl=False, timeout=10)
    c.starttls(cert.client_context())
    c.login("alice", PASSWORD)
    assert listener.until("Login")[-1]["service"] == "imap"
    c.logout()


# --- SIGHUP reload, a real process ----------------------------------------------------------


def _peer_cert(port: int) -> bytes:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        context.wrap_socket(sock) as tls,
    ):
        tls.recv(4)
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def test_sighup_reloads_the_certificate_for_new_connections(tmp_path: Path) -> None:
    first, second = make_cert(tmp_path / "a", "first"), make_cert(tmp_path / "b", "second")
    live = Cert(tmp_path / "live.crt", tmp_path / "live.key")
    live.cert.write_bytes(first.cert.read_bytes())
    live.key.write_bytes(first.key.read_bytes())
    data = tmp_path / "data"
    assert imapd("user", "add", "alice", "--password", PASSWORD, data_dir=data).returncode == 0
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "imapd",
            "serve",
            "--data-dir",
            str(data),
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--listen-tls",
            f"127.0.0.1:{port}",
            "--tls-cert-file",
            str(live.cert),
            "--tls-key-file",
            str(live.key),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # readiness: the server says so
            if "serving IMAPS" in line:
                break
        assert _peer_cert(port) == first.der
        old = imapclient.IMAPClient(
            "127.0.0.1", port=port, ssl=True, ssl_context=first.client_context(), timeout=10
        )
        old.login("alice", PASSWORD)
        # A broken pair (new certificate, old key) is refused: the old one stays in use.
        live.cert.write_bytes(second.cert.read_bytes())
        proc.send_signal(signal.SIGHUP)
        for line in proc.stdout:
            if "TLS reload failed" in line:
                break
        assert _peer_cert(port) == first.der
        live.key.write_bytes(second.key.read_bytes())
        proc.send_signal(signal.SIGHUP)
        for line in proc.stdout:
            if "TLS certificate reloaded" in line:
                break
        assert _peer_cert(port) == second.der
        # The existing connection keeps its TLS session and certificate.
        assert old.noop()[0] == b"NOOP completed"
        old.logout()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        if proc.stdout is not None:
            proc.stdout.close()


def test_dev_cert_script_makes_a_usable_pair(tmp_path: Path) -> None:
    require_openssl()
    script = Path(__file__).resolve().parents[2] / "scripts" / "dev-cert"
    result = subprocess.run(
        [str(script), str(tmp_path / "dev")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    pair = Cert(tmp_path / "dev" / "cert.pem", tmp_path / "dev" / "key.pem")
    assert ServerTls.load(pair.cert, pair.key).context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert pair.key.stat().st_mode & 0o077 == 0  # the key is private
