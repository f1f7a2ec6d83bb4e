"""``imapd serve --workers N``: one supervisor process, N worker processes (docs/workers.md).

Owns: `supervise` (the supervisor: prepares the store once, binds the listening sockets,
forks the workers, restarts one that dies, forwards SIGTERM/SIGINT/SIGHUP, removes what it
bound at the end) and what a worker asks of it: `in_worker`, `inherited`, `listen_on`.

- **Sockets**: the supervisor binds IMAP, IMAPS, LMTP and the control socket before forking.
  IMAP and IMAPS get one SO_REUSEPORT socket per worker on the same address (the kernel
  spreads connections over them); LMTP and the control socket are shared by all workers.
  The supervisor keeps every socket open, so a restarted worker inherits its own again and
  the connections that arrived for it meanwhile wait in its accept queue, none is refused.
- **Store**: opened (created, migrated) once by the supervisor before the first fork, so N
  workers never race to migrate a new file; closed again: the supervisor holds no store.
- **Workers** are forked from the supervisor before it runs any event loop (no threads to
  copy); each runs the ordinary server (`imapd.cli.serve.serve`) with ``cluster`` on: its
  sessions, IDLE and NOTIFY hear of the other workers' commits through the wake channel
  (imapd/cluster/wake.py), the event sinks run in one worker at a time (imapd/cluster/node.py).
- **Faults**: a worker that exits while the supervisor is not stopping is logged and forked
  again (at once, or after a second when it lived less than one: a crash loop does not spin).
- **Supervisor killed** (-9): each worker gets SIGTERM from the kernel (PR_SET_PDEATHSIG)
  and drains; nothing serves on without a supervisor to restart it.
- **Stopping**: SIGTERM or SIGINT is forwarded to every worker as SIGTERM (each drains as a
  single server does: in-flight commands finish, the rest get BYE); a worker still there after
  ``shutdown_timeout`` plus 5 s gets SIGKILL. The supervisor exits when all are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from imapd.cluster.admission import SharedCounts
    from imapd.config import Config

log = logging.getLogger("imapd.supervisor")

#: In a worker: its index (1..N) and the supervisor's sockets by kind.
_WORKER: int | None = None
_INHERITED: dict[str, socket.socket] = {}
#: The connection counts all workers share (imapd/cluster/admission.py), made before forking.
_SHARED: SharedCounts | None = None
#: A worker that lived less than this is restarted after this long (no spinning crash loop).
RESTART_DELAY = 1.0
#: Beyond shutdown_timeout, what a worker gets to close its store before SIGKILL.
KILL_AFTER = 5.0
_SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def in_worker() -> bool:
    return _WORKER is not None


def inherited(kind: str) -> socket.socket | None:
    """The supervisor's listening socket of ``kind`` (imap, imaps, lmtp, control)."""
    return _INHERITED.get(kind)


class ListenOn(TypedDict, total=False):
    host: str
    port: int
    sock: socket.socket


def listen_on(kind: str, host: str, port: int) -> ListenOn:
    """Keyword arguments for asyncio.start_server: the inherited socket, or host and port."""
    sock = inherited(kind)
    return {"sock": sock} if sock is not None else {"host": host, "port": port}


def shared_counts() -> SharedCounts | None:
    """In a worker: the connection counts of all workers, attached as this worker."""
    if _WORKER is None or _SHARED is None:
        return None
    if _SHARED.worker != _WORKER:
        _SHARED.attach(_WORKER)
    return _SHARED


def worker_ready() -> None:
    log.info("worker %d (pid %d) serving", _WORKER, os.getpid())


def _tcp(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=1024, reuse_port=reuse_port)


def _refuse_taken(host: str, port: int) -> None:
    """OSError (EADDRINUSE) when something listens on the address already: SO_REUSEPORT
    would otherwise let a second server on the same port quietly take half the
    connections (a plain bind first: it fails on any listener there)."""
    if port:
        _tcp(host, port).close()


def _per_worker(sockets: dict[str, socket.socket], kind: str, workers: int) -> None:
    """One SO_REUSEPORT socket per worker on the address of ``sockets[kind]`` (worker 1's):
    the kernel spreads new connections over them by address hash. One socket shared by
    all workers would give each connection to whichever worker's event loop woke first,
    which under load is the same one again and again (seen in the tests: 12 of 12)."""
    host, port = sockets[kind].getsockname()[:2]
    for index in range(2, workers + 1):
        sockets[f"{kind}#{index}"] = _tcp(host, port, reuse_port=True)


def _unix(path: Path) -> socket.socket:
    import stat

    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(1024)
    return sock


async def _control_in_use(path: Path) -> bool:
    from imapd.control.unix import open_unix

    if not (os.path.exists(path) or os.path.islink(path)):  # noqa: ASYNC240 - once, at start
        return False
    try:
        _, writer = await open_unix(path)
    except OSError:
        return False
    writer.close()
    return True


async def _prepare(config: Config) -> bool:
    """Create or migrate the store once; prepare the spool; is the control socket free?"""
    from imapd import spool
    from store.open import open_store, private_dir

    private_dir(config.data_dir)
    store = await open_store(
        config.db_path,
        lambda changes: None,
        synchronous=config.sqlite_synchronous,
        scrypt_n=config.scrypt_n,
        check=config.startup_check,
    )
    await store.close()
    spool.prepare_dir(config.data_dir)  # leftovers of a crash go now, never under a worker
    from imapd.control import socket_path

    return not await _control_in_use(socket_path(config.data_dir))


def _bind(config: Config, control_free: bool) -> tuple[dict[str, socket.socket], list[Path]]:
    from imapd.config import parse_hostport
    from imapd.control import socket_path
    from imapd.control.unix import bind

    sockets: dict[str, socket.socket] = {}
    paths: list[Path] = []
    try:
        spread = config.workers > 1
        _refuse_taken(*config.listen)
        sockets["imap"] = _tcp(*config.listen, reuse_port=spread)
        _per_worker(sockets, "imap", config.workers)
        if config.listen_tls is not None:
            _refuse_taken(*config.listen_tls)
            sockets["imaps"] = _tcp(*config.listen_tls, reuse_port=spread)
            _per_worker(sockets, "imaps", config.workers)
        if config.lmtp:
            if "/" in config.lmtp:
                sockets["lmtp"] = _unix(Path(config.lmtp))
                paths.append(Path(config.lmtp))
            else:
                sockets["lmtp"] = _tcp(*parse_hostport(config.lmtp, "lmtp"))
        if control_free:
            path = socket_path(config.data_dir)
            sockets["control"] = bind(path)
            paths.append(path)
        else:
            log.warning(
                "control socket %s belongs to another running server: none for these workers",
                socket_path(config.data_dir),
            )
    except BaseException:
        for sock in sockets.values():
            sock.close()
        raise
    return sockets, paths


def _announce(config: Config, sockets: dict[str, socket.socket]) -> str:
    shown: list[tuple[str, str]] = []
    for kind, label in (("imap", "IMAP"), ("imaps", "IMAPS"), ("lmtp", "LMTP")):
        if (sock := sockets.get(kind)) is None:
            continue
        name = sock.getsockname()
        shown.append((label, name if isinstance(name, str) else f"{name[0]}:{name[1]}"))
    if config.log_format == "text":
        for kind, where in shown:
            data = f", data in {config.data_dir}" if kind != "LMTP" else ""
            print(  # noqa: T201 - as `imapd serve` says it
                f"imapd: serving {kind} on {where}{data} ({config.workers} workers)", flush=True
            )
    return ", ".join(f"{k} on {w}" for k, w in shown)


def supervise(config: Config) -> int:
    """Run the supervisor until SIGTERM/SIGINT and all workers are gone; the exit status."""
    from imapd import daemon

    try:
        control_free = asyncio.run(_prepare(config))
        sockets, paths = _bind(config, control_free)
    except OSError as exc:
        print(f"imapd: cannot listen: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    status = _announce(config, sockets)
    global _SHARED
    from imapd.cluster.admission import SharedCounts

    _SHARED = SharedCounts.create(config.max_connections or 65536 * config.workers)
    # The supervisor checked the store (startup_check) once: workers, restarts included,
    # read only its header and schema, not every page N times.
    worker_config = dataclasses.replace(config, pid_file=None, cluster=True, startup_check="schema")
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    workers: dict[int, tuple[int, float]] = {}  # pid -> (index, started)
    pending: dict[int, float] = {}  # index -> when to fork it again
    try:
        with daemon.PidFile(config.pid_file) if config.pid_file else contextlib.nullcontext():
            for index in range(1, config.workers + 1):
                pid = _fork(index, worker_config, sockets, old_mask)
                workers[pid] = (index, time.monotonic())
            daemon.sd_notify(f"READY=1\nSTATUS=serving {status} with {config.workers} workers")
            _loop(config, worker_config, sockets, old_mask, workers, pending)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        for sock in sockets.values():
            sock.close()
        for path in paths:
            with contextlib.suppress(OSError):
                path.unlink()
    return 0


def _loop(
    config: Config,
    worker_config: Config,
    sockets: dict[str, socket.socket],
    old_mask: set[int | signal.Signals],
    workers: dict[int, tuple[int, float]],
    pending: dict[int, float],
) -> None:
    from imapd import daemon

    stopping_at: float | None = None
    while workers or (pending and stopping_at is None):
        info = signal.sigtimedwait(_SIGNALS, 0.5)
        now = time.monotonic()
        if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
            if stopping_at is None:
                log.info("stopping %d workers", len(workers))
                daemon.sd_notify("STOPPING=1")
                stopping_at = now
                pending.clear()
                _signal_all(workers, signal.SIGTERM)
        elif info is not None and info.si_signo == signal.SIGHUP:
            _signal_all(workers, signal.SIGHUP)
        while True:  # reap
            try:
                pid, wstatus = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            index, started = workers.pop(pid, (0, now))
            if index and _SHARED is not None:  # its connections closed with it
                _SHARED.forget_worker(index)
            if not index or stopping_at is not None:
                continue
            log.warning("worker %d (pid %d) %s; starting it again", index, pid, _describe(wstatus))
            pending[index] = now + (RESTART_DELAY if now - started < RESTART_DELAY else 0.0)
        if stopping_at is None:
            for index, due in sorted(pending.items()):
                if due <= now:
                    del pending[index]
                    pid = _fork(index, worker_config, sockets, old_mask)
                    workers[pid] = (index, time.monotonic())
        elif now - stopping_at > config.shutdown_timeout + KILL_AFTER:
            _signal_all(workers, signal.SIGKILL)


def _signal_all(workers: dict[int, tuple[int, float]], sig: signal.Signals) -> None:
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _die_with(supervisor: int) -> None:
    """A worker whose supervisor is gone (kill -9 of the supervisor) gets SIGTERM and
    drains, rather than serving on alone: Linux's PR_SET_PDEATHSIG; elsewhere nothing."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != supervisor:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _describe(wstatus: int) -> str:
    if os.WIFSIGNALED(wstatus):
        return f"killed by signal {os.WTERMSIG(wstatus)}"
    return f"exited with status {os.waitstatus_to_exitcode(wstatus)}"


def _fork(
    index: int,
    config: Config,
    sockets: dict[str, socket.socket],
    old_mask: set[int | signal.Signals],
) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    supervisor = os.getpid()
    pid = os.fork()
    if pid:
        log.info("worker %d: pid %d", index, pid)
        return pid
    code = 70  # EX_SOFTWARE: a worker that did not return normally
    try:
        global _WORKER
        _WORKER = index
        _INHERITED.update({k: v for k, v in sockets.items() if "#" not in k})
        for kind in ("imap", "imaps"):  # this worker's own SO_REUSEPORT socket
            if (own := sockets.get(f"{kind}#{index}")) is not None:
                _INHERITED[kind] = own
        for sig in _SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.environ.pop("NOTIFY_SOCKET", None)  # systemd hears from the supervisor only
        _die_with(supervisor)
        from imapd.cli.common import run
        from imapd.cli.serve import serve

        code = run(serve(config))
    except BaseException:
        logging.getLogger("imapd").exception("worker %d failed", index)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
