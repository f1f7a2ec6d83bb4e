"""Start, watch and stop the servers under test, and account for their CPU time.

``Ours`` runs ``<venv>/bin/python -m imapd serve`` on a fresh data dir. ``Dovecot`` runs Debian's
dovecot-imapd privately (own config, base_dir, state_dir, log and mail under a temp dir;
passwd-file with {PLAIN} passwords; mail_fsync left at its default) as docs/design.md
("Dovecot as a fair peer") prescribes. Both are started in their own session and stopped
with SIGTERM (SIGKILL to that session only if they do not exit in time).

CPU time: the sum of utime+stime+cutime+cstime over the server's process tree from
/proc/PID/stat. cutime/cstime hold the time of children already reaped, so processes that come
and go (Dovecot's imap and imap-login processes) are counted as well as the live ones.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
NOFILE = 20000  # docs/design.md: `ulimit -n 20000` (the hard limit here) before starting a server


class ServerError(RuntimeError):
    """A server failed to start or stop; the message carries its log tail."""


# -- /proc accounting -------------------------------------------------------------------------


def _read_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime+cutime+cstime in ticks) of one process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    rest = raw[raw.rindex(b")") + 2 :].split()
    # rest[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
    return int(rest[1]), int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user+sys, including reaped children) of ``root`` and all its descendants."""
    stats: dict[int, tuple[int, int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _read_stat(int(name))
            if st is not None:
                stats[int(name)] = st
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo.extend(children.get(pid, ()))
    return total / _CLK_TCK


def self_cpu_seconds() -> float:
    return time.process_time()


# -- sysctl -----------------------------------------------------------------------------------


class Sysctls:
    """Raise kernel settings for the run and put the old values back afterwards."""

    def __init__(self) -> None:
        self._saved: dict[str, str] = {}

    def raise_to(self, name: str, value: int) -> None:
        path = Path("/proc/sys") / name.replace(".", "/")
        try:
            old = path.read_text().strip()
            if int(old) >= value:
                return
            path.write_text(f"{value}\n")
        except (OSError, ValueError) as exc:
            print(f"note: could not raise {name} to {value} ({exc}); continuing", file=sys.stderr)
            return
        self._saved.setdefault(name, old)
        print(f"sysctl {name}: {old} -> {value} (restored at exit)", file=sys.stderr)

    def restore(self) -> None:
        for name, old in self._saved.items():
            try:
                (Path("/proc/sys") / name.replace(".", "/")).write_text(f"{old}\n")
                print(f"sysctl {name} restored to {old}", file=sys.stderr)
            except OSError as exc:
                print(f"WARNING: could not restore {name}={old}: {exc}", file=sys.stderr)
        self._saved.clear()


# -- servers ----------------------------------------------------------------------------------


def _raise_nofile() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class Server:
    name = "server"
    host = "127.0.0.1"
    user = "bench"
    password = "bench"  # noqa: S105 - a throwaway benchmark account on loopback

    def __init__(self, port: int, *, keep: bool = False) -> None:
        self.port = port
        self.keep = keep
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-"))
        self.log_path = self.tmp / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.version = "?"

    # subclass hooks
    def _prepare(self) -> list[str]:
        raise NotImplementedError

    def _extra_logs(self) -> list[Path]:
        return []

    def start(self, timeout: float = 60.0) -> None:
        if not port_is_free(self.host, self.port):
            raise ServerError(
                f"{self.name}: port {self.host}:{self.port} is in use "
                "(pick another with --port-base)"
            )
        argv = self._prepare()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=self._env(),
                start_new_session=True,
                preexec_fn=_raise_nofile,
            )
        self._wait_ready(timeout)

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        last = "no attempt"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with status {self.proc.returncode} "
                    f"while starting\n{self.log_tail()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=2) as s:
                    s.settimeout(5)
                    greeting = s.recv(4096)
                    if greeting.startswith(b"* OK"):
                        return
                    last = f"greeting {greeting[:80]!r}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        raise ServerError(
            f"{self.name} did not answer '* OK' on {self.host}:{self.port} "
            f"within {timeout:.0f} s (last: {last})\n{self.log_tail()}"
        )

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return tree_cpu_seconds(self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for path in [self.log_path, *self._extra_logs()]:
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            if text:
                out.append(f"--- tail of {path} ---")
                out.extend(text)
        return "\n".join(out) if out else f"(no log output in {self.tmp})"

    def stop(self, timeout: float = 20.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(
                    f"WARNING: {self.name} ignored SIGTERM for {timeout:.0f} s; SIGKILL",
                    file=sys.stderr,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # its own session, started by us
                proc.wait(10)
        # Stragglers of the server's own session (e.g. Dovecot children) get the same treatment.
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)

    def cleanup(self) -> None:
        if self.keep:
            print(f"kept {self.name} files in {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


class Ours(Server):
    name = "ours"

    def __init__(self, port: int, *, keep: bool = False, python: Path = VENV_PYTHON) -> None:
        super().__init__(port, keep=keep)
        self.python = python
        self.data_dir = self.tmp / "data"
        self.workers: int | None = None  # imapd serve --workers (docs/workers.md)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        # Thousands of connections of one user from loopback, as Dovecot's config below
        # allows (mail_max_userip_connections = 10000): only the descriptor limit counts.
        for limit in ("MAX_CONNECTIONS", "MAX_CONNECTIONS_PER_IP", "MAX_CONNECTIONS_PER_USER_IP"):
            env.setdefault(f"IMAPD_{limit}", "0")
        if self.workers:
            env["IMAPD_WORKERS"] = str(self.workers)
        return env

    def _prepare(self) -> list[str]:
        if not self.python.exists():
            raise ServerError(f"ours: {self.python} not found (create the venv first)")
        self.data_dir.mkdir()
        argv = [
            str(self.python),
            "-m",
            "imapd",
            "user",
            "add",
            self.user,
            "--password",
            self.password,
            "--data-dir",
            str(self.data_dir),
        ]
        try:
            res = subprocess.run(
                argv, cwd=REPO, env=self._env(), capture_output=True, timeout=120, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ServerError(f"ours: `{' '.join(argv)}` timed out") from exc
        if res.returncode != 0:
            raise ServerError(
                f"ours: `{' '.join(argv)}` failed ({res.returncode}):\n"
                + (res.stdout + res.stderr).decode(errors="replace")[-3000:]
            )
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.version = (
                subprocess.run(
                    ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=False,
                ).stdout.strip()
                or "?"
            )
        return [
            str(self.python),
            "-m",
            "imapd",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--listen",
            f"{self.host}:{self.port}",
        ]


DOVECOT_CONF = """\
# Private benchmark instance (scripts/bench): see docs/design.md
protocols = imap
listen = {host}
base_dir = {tmp}/run
state_dir = {tmp}/state
log_path = {tmp}/dovecot.log
info_log_path = {tmp}/dovecot.log
instance_name = bench-dovecot-{port}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = {login_user}
default_internal_user = {internal_user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {tmp}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {tmp}/passwd
}}
mail_location = maildir:~/Maildir
mailbox_list_index = yes
mail_plugins = notify
# mail_fsync stays at its default (optimized): as durable as our FULL-synchronous SQLite.
default_process_limit = 1000
default_client_limit = 20000
mail_max_userip_connections = 10000
service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  process_limit = 2000
}}
service imap {{
  process_limit = 8000
}}
"""


def find_dovecot() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.path.exists(p)), None
    )


def ensure_dovecot() -> str:
    exe = find_dovecot()
    if exe:
        return exe
    if os.geteuid() != 0:
        raise ServerError(
            "dovecot is not installed and we are not root: "
            "run `apt-get install -y dovecot-imapd` first"
        )
    print("dovecot not found: installing dovecot-imapd with apt-get ...", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "dovecot-imapd"]
    res = subprocess.run(cmd, env=env, capture_output=True, timeout=900, check=False)
    if res.returncode != 0:
        subprocess.run(
            ["apt-get", "update"], env=env, capture_output=True, timeout=900, check=False
        )
        res = subprocess.run(cmd, env=env, capture_output=True, timeout=900, check=False)
    exe = find_dovecot()
    if res.returncode != 0 or not exe:
        raise ServerError(
            "apt-get install dovecot-imapd failed:\n"
            + (res.stdout + res.stderr).decode(errors="replace")[-3000:]
        )
    return exe


class Dovecot(Server):
    name = "dovecot"

    def _extra_logs(self) -> list[Path]:
        return [self.tmp / "dovecot.log"]

    def _prepare(self) -> list[str]:
        exe = ensure_dovecot()
        # Login/auth processes run as other users and must reach base_dir.
        self.tmp.chmod(0o755)
        if os.geteuid() == 0:
            mail = pwd.getpwnam("nobody")  # Dovecot refuses mail access as uid 0
            login_user, internal_user = "dovenull", "dovecot"
            for u in (login_user, internal_user):
                try:
                    pwd.getpwnam(u)
                except KeyError:
                    login_user = internal_user = "nobody"
        else:  # unprivileged: everything runs as us
            mail = pwd.getpwuid(os.geteuid())
            login_user = internal_user = mail.pw_name
        home = self.tmp / "home" / self.user
        home.mkdir(parents=True)
        os.chown(home, mail.pw_uid, mail.pw_gid)
        (self.tmp / "passwd").write_text(
            f"{self.user}:{{PLAIN}}{self.password}:{mail.pw_uid}:{mail.pw_gid}::{home}::\n"
        )
        (self.tmp / "passwd").chmod(0o644)
        conf = self.tmp / "dovecot.conf"
        conf.write_text(
            DOVECOT_CONF.format(
                host=self.host,
                port=self.port,
                tmp=self.tmp,
                login_user=login_user,
                internal_user=internal_user,
            )
        )
        res = subprocess.run(
            [exe, "-c", str(conf), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        self.version = res.stdout.strip() or "?"
        check = subprocess.run(
            [exe, "-c", str(conf), "-n"], capture_output=True, text=True, timeout=30, check=False
        )
        if check.returncode != 0:
            raise ServerError(f"dovecot rejected its config {conf}:\n{check.stderr[-3000:]}")
        return [exe, "-F", "-c", str(conf)]
