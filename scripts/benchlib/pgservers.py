"""PostgreSQL for the ``cluster`` section: a throwaway cluster, and our server on it with one
or more instances.

`ThrowawayPostgres` runs Debian's PostgreSQL binaries (``/usr/lib/postgresql/N/bin``, newest
N; as the ``postgres`` system user when we are root): ``initdb`` into a temp dir, ``pg_ctl
start`` on the given port with its socket there, stopped (``-m fast``) and removed at the end.
Durability as shipped (``fsync=on``, ``synchronous_commit=on``): a commit is on disk when
acknowledged, as with the SQLite store's ``synchronous=FULL`` (docs/design.md, the fairness
rules). Its CPU seconds are the postmaster's process tree (backends included, also the
reaped ones: cutime/cstime).

`OursPostgres` is `Ours` with ``--store URL`` and K ``imapd serve`` processes on ports P..P+K-1,
each with its own data dir (local files only), all on one database. Clients are spread over
the instances (`next_port`, round robin); the first instance is "A". ``cpu_seconds`` is the sum
of the imapd processes and of PostgreSQL (when the cluster is ours to measure), so per-CPU
figures compare with the SQLite store's whole cost; `splits` keeps each measured window's
(imapd, PostgreSQL) parts for the report.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .servers import REPO, Ours, ServerError, _raise_nofile, port_is_free, tree_cpu_seconds

PG_ROOT = Path("/usr/lib/postgresql")


def find_pg_bin() -> Path | None:
    if env := os.environ.get("IMAPD_PG_BIN"):
        return Path(env) if (Path(env) / "initdb").exists() else None
    if not PG_ROOT.is_dir():
        return None
    found = sorted(
        (p for p in PG_ROOT.iterdir() if p.name.isdigit() and (p / "bin" / "initdb").exists()),
        key=lambda p: int(p.name),
    )
    return found[-1] / "bin" if found else None


class ThrowawayPostgres:
    def __init__(self, port: int, *, keep: bool = False) -> None:
        self.port = port
        self.keep = keep
        self.bin = find_pg_bin()
        if self.bin is None:
            raise ServerError(
                f"no PostgreSQL binaries under {PG_ROOT}/*/bin: apt-get install postgresql,"
                " or give --store postgresql://..."
            )
        self.root = Path(tempfile.mkdtemp(prefix="bench-postgres-"))
        self.as_user: list[str] = []
        self.version = "?"
        self._names = itertools.count()

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.as_user, *argv], capture_output=True, text=True, timeout=300, check=False
        )

    def start(self) -> None:
        assert self.bin is not None
        if not port_is_free("127.0.0.1", self.port):
            raise ServerError(f"postgres: port {self.port} is in use (pick another --port-base)")
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        init = self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )
        if init.returncode != 0:
            raise ServerError(f"initdb failed: {init.stderr or init.stdout}")
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            " -c max_connections=300 -c shared_buffers=128MB"
        )
        start = self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "postgres.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        if start.returncode != 0:
            raise ServerError(f"pg_ctl start failed: {start.stderr or start.stdout}")
        self.version = self._run(str(self.bin / "postgres"), "--version").stdout.strip()

    def pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().split()[0])
        return None

    def cpu_seconds(self) -> float:
        pid = self.pid()
        return tree_cpu_seconds(pid) if pid else 0.0

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        name = f"bench{next(self._names)}"
        assert self.bin is not None
        made = self._run(
            str(self.bin / "createdb"), "-h", str(self.root), "-p", str(self.port), name
        )
        if made.returncode != 0:
            raise ServerError(f"createdb {name} failed: {made.stderr}")
        return self.url(name)

    def stop(self) -> None:
        if self.bin is not None and self.data.exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def cleanup(self) -> None:
        if self.keep:
            print(f"kept PostgreSQL files in {self.root}", file=sys.stderr)
        else:
            shutil.rmtree(self.root, ignore_errors=True)


class OursPostgres(Ours):
    """K instances of our server on one PostgreSQL database."""

    def __init__(
        self,
        port: int,
        url: str,
        instances: int,
        postgres: ThrowawayPostgres | None,
        *,
        name: str,
        keep: bool = False,
    ) -> None:
        self.name = name  # before super().__init__: it names the temp dir
        super().__init__(port, keep=keep)
        self.url = url
        self.instances = instances
        self.postgres = postgres
        self.ports = [port + i for i in range(instances)]
        self.procs: list[subprocess.Popen[bytes]] = []
        self._round = itertools.cycle(self.ports)
        self._mark: tuple[float, float] | None = None
        #: (imapd, PostgreSQL) CPU seconds of each measured window, in order
        self.splits: list[tuple[float, float]] = []

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env["IMAPD_STORE"] = self.url
        return env

    def next_port(self) -> int:
        return next(self._round)

    def start(self, timeout: float = 60.0) -> None:
        for p in self.ports:
            if not port_is_free(self.host, p):
                raise ServerError(f"{self.name}: port {self.host}:{p} is in use")
        argv = self._prepare()  # `imapd user add` through the store URL: once
        self.version = f"{self.version}, {self.instances} instance(s) on PostgreSQL"
        for i, p in enumerate(self.ports):
            data = self.tmp / f"instance{i}"
            data.mkdir()
            inst = [*argv[:-4], "--data-dir", str(data), "--listen", f"{self.host}:{p}"]
            with open(self.tmp / f"instance{i}.log", "ab") as log:
                proc = subprocess.Popen(
                    inst,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=REPO,
                    env=self._env(),
                    start_new_session=True,
                    preexec_fn=_raise_nofile,
                )
            self.procs.append(proc)
            self.proc, self.port, self.log_path = proc, p, self.tmp / f"instance{i}.log"
            self._wait_ready(timeout)
        self.proc, self.port = self.procs[0], self.ports[0]
        self.log_path = self.tmp / "instance0.log"

    def _parts(self) -> tuple[float, float]:
        imapd = sum(tree_cpu_seconds(p.pid) for p in self.procs)
        pg = self.postgres.cpu_seconds() if self.postgres is not None else float("nan")
        return imapd, pg

    def cpu_seconds(self) -> float:
        imapd, pg = self._parts()
        if self._mark is None:
            self._mark = (imapd, pg)
        else:
            self.splits.append((imapd - self._mark[0], pg - self._mark[1]))
            self._mark = None
        return imapd + (0.0 if pg != pg else pg)

    def alive(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs)

    def stop(self, timeout: float = 20.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)  # its own session, started by us
                p.wait(10)
        self.procs.clear()
        self.proc = None
