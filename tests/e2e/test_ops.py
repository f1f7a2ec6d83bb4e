"""Operations: configuration precedence (file < IMAPD_* environment < flags) and errors naming
the option, the pid file, systemd's READY=1/STOPPING=1 on $NOTIFY_SOCKET, JSON log lines,
and a bounded clean shutdown, against a real ``python -m imapd serve`` where it matters."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imapd import daemon
from imapd.config import ConfigError, load
from tests.e2e.process import free_port, imapd
from tests.e2e.tls_certs import make_cert
from tests.helpers.server import PASSWORD
from tests.notify.listener import short_socket_path
from tests.rawclient import RawClient

# --- configuration ------------------------------------------------------------------------


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    toml = tmp_path / "imapd.toml"
    toml.write_text(
        'listen = "127.0.0.1:1001"\nservername = "from-file"\ndata_dir = "/file"\n'
        'tls_server_cert = "/file/cert.pem"\ntls_server_key = "/file/key.pem"\n'
        "login_timeout = 5\n[limits]\nmax_line_length = 1000\n"
    )
    env = {
        "IMAPD_LISTEN": "127.0.0.1:1002",
        "IMAPD_SERVERNAME": "from-env",
        "IMAPD_TLS_CERT_FILE": "/env/cert.pem",
        "IMAPD_LIMITS_MAX_LINE_LENGTH": "2000",
        "IMAPD_ALLOW_PLAINTEXT_LOGIN": "false",
        "IMAPD_LISTEN_TLS": "[::1]:993",
        "PATH": "/bin",
        "IMAPDX": "not ours",
    }
    only_file = load(toml)
    assert only_file.listen == ("127.0.0.1", 1001)
    assert only_file.tls_cert_file == Path("/file/cert.pem")  # Cyrus's names work
    assert only_file.tls_key_file == Path("/file/key.pem")
    assert only_file.login_timeout == 5.0
    with_env = load(toml, env)
    assert with_env.listen == ("127.0.0.1", 1002)
    assert with_env.servername == "from-env"
    assert with_env.data_dir == Path("/file")  # not in env: the file's
    assert with_env.tls_cert_file == Path("/env/cert.pem")
    assert with_env.tls_key_file == Path("/file/key.pem")
    assert with_env.limits.max_line_length == 2000
    assert with_env.allow_plaintext_login is False
    assert with_env.listen_tls == ("::1", 993)
    with_flags = load(toml, env, listen=("127.0.0.1", 1003), servername=None)
    assert with_flags.listen == ("127.0.0.1", 1003)
    assert with_flags.servername == "from-env"  # a flag not given does not override
    # IMAPD_CONFIG names the file when --config is not given
    assert load(None, {"IMAPD_CONFIG": str(toml)}).servername == "from-file"


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("", {"IMAPD_SCRYPT_N": "many"}, "IMAPD_SCRYPT_N (environment): expected int"),
        ("", {"IMAPD_LISTEN": "nowhere"}, "IMAPD_LISTEN (environment): listen: expected HOST"),
        ("", {"IMAPD_METADATA_PRIVATE": "maybe"}, "IMAPD_METADATA_PRIVATE"),
        ("", {"IMAPD_LISTNE": "127.0.0.1:1"}, "IMAPD_LISTNE (environment): listne: unknown"),
        ("", {"IMAPD_LIMITS_MAX_DEPTH": "deep"}, "IMAPD_LIMITS_MAX_DEPTH"),
        ("", {"IMAPD_LISTEN_TLS": "127.0.0.1:993"}, "listen_tls: needs tls_cert_file"),
        ("", {"IMAPD_LOG_FORMAT": "xml"}, "log_format: expected one of"),
        ("tls_key_file = '/k'\n", {}, "tls_key_file: set without tls_cert_file"),
        ("tls_cert_file = 3\n", {}, "tls_cert_file: expected a path"),
        ("listen_tls = 'x'\n", {}, "listen_tls: expected HOST:PORT"),
    ],
)
def test_invalid_configuration_names_the_option(
    tmp_path: Path, toml: str, env: dict[str, str], message: str
) -> None:
    path = tmp_path / "imapd.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load(path, env)
    assert message in str(info.value)


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imapd", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_the_cli_refuses_invalid_configuration_at_start(tmp_path: Path) -> None:
    result = _serve("--data-dir", str(tmp_path), env={"IMAPD_LOGIN_TIMEOUT": "soon"})
    assert result.returncode == 2
    assert "invalid configuration: IMAPD_LOGIN_TIMEOUT (environment)" in result.stderr
    result = _serve("--data-dir", str(tmp_path), "--listen-tls", "127.0.0.1:0")
    assert result.returncode == 2
    assert "listen_tls: needs tls_cert_file" in result.stderr
    missing = tmp_path / "missing.pem"
    result = _serve("--data-dir", str(tmp_path), "--tls-cert-file", str(missing))
    assert result.returncode == 2
    assert f"tls_cert_file: {missing}: no such file" in result.stderr
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    result = _serve("--data-dir", str(tmp_path), "--tls-cert-file", str(garbage))
    assert result.returncode == 2
    assert "tls_cert_file/tls_key_file: cannot load" in result.stderr
    assert "Traceback" not in result.stderr


# --- a real process: pid file, sd_notify, JSON logs, shutdown -----------------------------


class NotifySocket:
    """A stand-in for systemd's notification socket."""

    def __init__(self) -> None:
        self.path = short_socket_path()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def next(self, timeout: float = 30.0) -> str:
        self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode()

    def close(self) -> None:
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(os.path.dirname(self.path))


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    yield sock
    sock.close()


def test_pid_file_sd_notify_json_logs_and_shutdown(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    data = tmp_path / "data"
    assert imapd("user", "add", "alice", "--password", PASSWORD, data_dir=data).returncode == 0
    cert = make_cert(tmp_path / "tls")
    pid_file = tmp_path / "run" / "imapd.pid"
    port, tls_port = free_port(), free_port()
    env = {
        **os.environ,
        "NOTIFY_SOCKET": notify_socket.path,
        "IMAPD_DATA_DIR": str(data),
        "IMAPD_LISTEN": "127.0.0.1:1",  # overridden by --listen
        "IMAPD_LISTEN_TLS": f"127.0.0.1:{tls_port}",
        "IMAPD_LOG_FORMAT": "json",
        "IMAPD_TLS_CERT_FILE": str(cert.cert),
        "IMAPD_TLS_KEY_FILE": str(cert.key),
        "IMAPD_SERVERNAME": "imap.example.org",
        "IMAPD_SHUTDOWN_TIMEOUT": "2",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "imapd",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--pid-file",
            str(pid_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        ready = notify_socket.next()
        assert ready.startswith("READY=1\n")
        assert f"IMAP on 127.0.0.1:{port}" in ready and f"IMAPS on 127.0.0.1:{tls_port}" in ready
        assert pid_file.read_text() == f"{proc.pid}\n"
        # Listening when READY=1 came: a session, left idle and logged in
        raw = RawClient.connect("127.0.0.1", port)
        raw.login("alice", PASSWORD)
        tls = RawClient(
            cert.client_context().wrap_socket(
                socket.create_connection(("127.0.0.1", tls_port), timeout=10),
                server_hostname="127.0.0.1",
            )
        )
        assert tls.response().startswith("* OK")
        assert tls.command("x", "NOOP") == ["x OK NOOP completed"]
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert notify_socket.next() == "STOPPING=1"
        # Idle sessions get BYE and the process exits well within shutdown_timeout + slack
        assert raw.response() == "* BYE Server shutting down"
        assert tls.response() == "* BYE Server shutting down"
        assert proc.wait(15) == 0
        assert time.monotonic() - started < 10
        assert not pid_file.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _stdout, stderr = proc.communicate()
    lines = [json.loads(line) for line in stderr.splitlines()]  # every line is JSON
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    assert lines[0]["time"].endswith("Z")
    login = next(entry for entry in lines if " login alice " in entry["message"])
    assert login["level"] == "INFO" and login["logger"] == "imapd.session"
    assert login["session"].startswith("imap.example.org-")
    assert login["session"] in login["message"]
    assert any(entry["message"].startswith("shutting down") for entry in lines)


def test_sd_notify_abstract_socket_and_absent() -> None:
    name = f"imapd-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert daemon.sd_notify("READY=1", {"NOTIFY_SOCKET": "@" + name})
        sock.settimeout(5)
        assert sock.recv(100) == b"READY=1"
    assert not daemon.sd_notify("READY=1", {})


def test_tune_gc_collects_young_objects_less_often_and_freezes_start_up() -> None:
    """In a fresh interpreter (the collector is process-wide): the young threshold is
    raised, the older ones kept, and what exists at start-up is frozen."""
    code = (
        "import gc; from imapd import daemon; before = gc.get_threshold(); "
        "daemon.tune_gc(); after = gc.get_threshold(); "
        "print(before[1:] == after[1:], after[0] == daemon.GC_YOUNG_THRESHOLD, "
        "gc.get_freeze_count() > 1000)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.split() == ["True", "True", "True"]


def test_pid_file_left_alone_when_it_is_not_ours(tmp_path: Path) -> None:
    path = tmp_path / "imapd.pid"
    with daemon.PidFile(path):
        assert path.read_text() == f"{os.getpid()}\n"
        path.write_text("1\n")  # another instance took over the file
    assert path.read_text() == "1\n"
    with daemon.PidFile(path):
        pass
    assert not path.exists()


def test_the_example_files_are_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    config = load(root / "docs" / "imapd.toml.example")
    assert config.listen_tls is not None and config.listen_tls[1] == 993
    assert config.tls_cert_file == Path("/etc/imapd/tls/fullchain.pem")
    unit = (root / "docs" / "imapd.service").read_text()
    assert "Type=notify" in unit and "ExecReload=/bin/kill -HUP $MAINPID" in unit
