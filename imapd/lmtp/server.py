"""The asyncio LMTP listener: moves bytes between sockets and `LmtpConnection`, and delivers.

Owns: the LMTP listener (TCP ``HOST:PORT``, or a UNIX socket when the configured value
contains ``/``), one task per connection, recipient lookup and delivery through the store's
normal `append` (one transaction per recipient, ``kind="deliver"``, ``Origin(service=
"lmtp")``, so the change is MessagesAdded(kind="deliver") and running IMAP sessions see the
message at once), and its part of the shutdown. Grammar and replies belong to
imapd/lmtp/protocol.py.

Implementation notes:
- Replies are buffered and written when the protocol needs more input (PIPELINING, RFC 2920):
  a pipelined MAIL/RCPT/RCPT/DATA batch gets its replies in one write.
- DATA streams (`MessageStart`, `MessageData`, `Message`): the message goes to a
  `MessageSink` (imapd/lmtp/sink.py), in memory below ``literal_spool_size`` octets, past it
  in a spool file the store reads in chunks (``NewMessage(content=path)``), removed when the
  transaction is over, delivered or not, or the connection lost mid-DATA. A message costs
  one copy, on disk when big, and its transformation is paid a slice per read.
- Delivery prepends ``Return-Path: <sender>`` as final delivery agents do (RFC 5321 §4.4;
  Dovecot and Cyrus lmtpd do the same). Several RCPTs that resolve to the same user get one
  copy (one append) and each its own reply (RFC 2033 §4.2 asks one reply per RCPT).
- A user is resolved at RCPT time (``550 5.1.1`` if unknown); a failure at delivery is
  ``451 4.3.0`` (temporary: the MTA retries) except a missing mailbox/user (``550 5.2.1``) and
  a full one (``552 5.2.2``, or ``452 4.2.2`` with ``lmtp_overquota_temporary``).
  Unexpected errors are logged; the client never sees a traceback.
- Never writes while holding the store's writer lock: the store call returns first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import stat
from pathlib import Path

from imapd import spool
from imapd.config import Config, parse_hostport
from imapd.lmtp.protocol import (
    NEED_DATA,
    Close,
    ConnectionClosed,
    LmtpConnection,
    LmtpLimits,
    Message,
    MessageData,
    MessageStart,
    Recipient,
    Reply,
    Send,
    return_path,
)
from imapd.lmtp.sink import MessageSink
from store.api import NewMessage, Store, User
from store.changes import Origin
from store.errors import MailboxInvalid, MailboxNotFound, OverQuota, StoreError, UserNotFound

log = logging.getLogger("imapd.lmtp")

READ_SIZE = 65536
#: RFC 5321 §4.5.3.2.7: a server should wait at least 5 minutes for the next command.
READ_TIMEOUT = 300.0
SHUTTING_DOWN = Reply.of(421, "4.3.2 Service shutting down")
TIMED_OUT = Reply.of(421, "4.4.2 Timeout, closing connection")
CANNOT_KEEP = Reply.of(451, "4.3.0 <{rcpt}> Cannot keep the message, try again later")


class LmtpServer:
    """Listens on ``config.lmtp`` and delivers into ``store``."""

    def __init__(self, config: Config, store: Store) -> None:
        if config.lmtp is None:
            raise ValueError("config.lmtp is not set")
        self.config = config
        self.store = store
        self.where = config.lmtp
        self.limits = LmtpLimits(max_message_size=config.limits.max_literal_size)
        self.addresses: list[str | tuple[str, int]] = []
        self._server: asyncio.base_events.Server | None = None
        self._unix_path: Path | None = None
        self._tasks: dict[asyncio.Task[None], bool] = {}  # task -> busy delivering
        self.closing = False

    async def start(self) -> list[str | tuple[str, int]]:
        from imapd.cluster.supervisor import inherited  # --workers (docs/workers.md)

        if (sock := inherited("lmtp")) is not None:  # the supervisor's: it removes the path
            if sock.family == socket.AF_UNIX:
                self._server = await asyncio.start_unix_server(self._accept, sock=sock, limit=2**20)
            else:
                self._server = await asyncio.start_server(self._accept, sock=sock, limit=2**20)
            name = sock.getsockname()
            self.addresses = [name if isinstance(name, str) else (str(name[0]), int(name[1]))]
        elif "/" in self.where:
            path = Path(self.where)
            _remove_socket(path)  # a stale socket of a previous run
            self._server = await asyncio.start_unix_server(self._accept, path, limit=2**20)
            self._unix_path = path
            self.addresses = [str(path)]
        else:
            host, port = parse_hostport(self.where, "lmtp")
            self._server = await asyncio.start_server(self._accept, host, port, limit=2**20)
            self.addresses = [
                (str(a[0]), int(a[1])) for a in (s.getsockname() for s in self._server.sockets)
            ]
        for addr in self.addresses:
            log.info(
                "listening on %s (lmtp)", addr if isinstance(addr, str) else f"{addr[0]}:{addr[1]}"
            )
        return self.addresses

    async def close(self, grace: float) -> None:
        """Stop accepting; idle connections get 421, deliveries in flight may finish within
        ``grace`` seconds; whatever remains is cancelled."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        for task, busy in list(self._tasks.items()):
            if not busy:
                task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=1.0)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        if self._unix_path is not None:
            _remove_socket(self._unix_path)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self.closing or task is None:
            writer.close()
            return
        self._tasks[task] = False
        try:
            await _LmtpSession(self, task, reader, writer).run()
        finally:
            self._tasks.pop(task, None)

    def set_busy(self, task: asyncio.Task[None], busy: bool) -> None:
        if task in self._tasks:
            self._tasks[task] = busy


class _LmtpSession:
    def __init__(
        self,
        server: LmtpServer,
        task: asyncio.Task[None],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.server = server
        self.store = server.store
        self.task = task
        self.reader = reader
        self.writer = writer
        self.id = secrets.token_hex(6)
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else None
        self.conn = LmtpConnection(server.config.servername, server.limits)
        self.users: dict[str, User] = {}
        self.sink: MessageSink | None = None  # the message of the DATA in progress

    async def run(self) -> None:
        log.info("lmtp %s: connect from %s", self.id, self.peer or "local socket")
        out = bytearray(self.conn.greeting())
        try:
            while True:
                event = self.conn.next_event()
                if event is NEED_DATA:
                    await self._write(out)
                    out.clear()
                    data = await self._read()
                    if data is None:
                        break
                    self.conn.receive_data(data)
                    continue
                if self.sink is not None and not isinstance(event, MessageData | Message):
                    self._drop_sink()  # DATA ended without a message: refused (too big)
                match event:
                    case MessageData(data=data):
                        if self.sink is not None:
                            self.sink.write(data)
                    case MessageStart(sender=sender):
                        self._drop_sink()
                        self.sink = MessageSink(
                            return_path(sender),
                            self.server.config.data_dir / spool.SPOOL_DIR,
                            self.server.config.limits.literal_spool_size,
                        )
                    case Send():
                        out += event.to_bytes()
                    case Recipient():
                        out += await self._recipient(event)
                    case Message():
                        out += await self._deliver(event)
                    case Close(reply=reply):
                        out += reply.to_bytes()
                        break
                    case ConnectionClosed():
                        break
            await self._write(out)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.info("lmtp %s: connection lost: %s", self.id, exc)
        finally:
            self._drop_sink()  # the connection lost mid-DATA, or cancelled
            await self._close()

    def _drop_sink(self) -> None:
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.discard()

    async def _read(self) -> bytes | None:
        try:
            if self.server.closing:
                await self._write(SHUTTING_DOWN.to_bytes())
                return None
            return await asyncio.wait_for(self.reader.read(READ_SIZE), READ_TIMEOUT)
        except TimeoutError:
            await self._write(TIMED_OUT.to_bytes())
            return None
        except asyncio.CancelledError:
            if self.server.closing:
                await self._write(SHUTTING_DOWN.to_bytes())
                return None
            raise

    async def _write(self, data: bytes | bytearray) -> None:
        if not data or self.writer.is_closing():
            return
        self.writer.write(bytes(data))
        await self.writer.drain()

    async def _close(self) -> None:
        try:
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
        except (ConnectionError, TimeoutError) as exc:
            log.debug("lmtp %s: close: %s", self.id, exc)
        log.info("lmtp %s: disconnect", self.id)

    async def _recipient(self, event: Recipient) -> bytes:
        """RCPT: the first candidate name that is a user wins (see recipient_candidates)."""
        for name in event.candidates:
            try:
                user = await self.store.get_user(name)
            except UserNotFound:
                continue
            except StoreError as exc:
                log.warning("lmtp %s: recipient lookup failed: %s", self.id, exc.text)
                return self.conn.refuse_recipient(Reply.of(451, "4.3.0 Try again later"))
            self.users[user.name] = user
            return self.conn.accept_recipient(user.name)
        log.info("lmtp %s: unknown recipient refused", self.id)
        return self.conn.refuse_recipient()

    async def _deliver(self, event: Message) -> bytes:
        """One append per distinct user, in RCPT order; one reply per RCPT."""
        sink, self.sink = self.sink, None
        assert sink is not None, "Message without MessageStart"
        done: dict[str, Reply] = {}
        replies: list[Reply] = []
        self.server.set_busy(self.task, True)
        try:
            content: bytes | Path | None
            try:
                content = sink.content()
            except OSError as exc:
                log.warning("lmtp %s: cannot keep the message: %s", self.id, exc)
                content = None
            for rcpt in event.recipients:
                if rcpt.user not in done:
                    done[rcpt.user] = (
                        await self._deliver_one(rcpt.user, content)
                        if content is not None
                        else CANNOT_KEEP
                    )
                reply = done[rcpt.user]
                replies.append(
                    Reply(
                        reply.code,
                        tuple(line.replace("{rcpt}", rcpt.address) for line in reply.lines),
                    )
                )
        finally:
            sink.discard()
            self.server.set_busy(self.task, False)
        return self.conn.finish_message(replies)

    async def _deliver_one(self, name: str, content: bytes | Path) -> Reply:
        user = self.users[name]
        origin = Origin(session=self.id, user=name, service="lmtp", client=self.peer)
        try:
            result = await self.store.append(
                user.id, "INBOX", [NewMessage(content)], origin, kind="deliver"
            )
        except (MailboxNotFound, MailboxInvalid, UserNotFound):
            return Reply.of(550, "5.2.1 <{rcpt}> Mailbox unavailable")
        except OverQuota:  # RFC 3463 X.2.2: mailbox full (config: permanent or not)
            if self.server.config.lmtp_overquota_temporary:
                return Reply.of(452, "4.2.2 <{rcpt}> Mailbox full, try again later")
            return Reply.of(552, "5.2.2 <{rcpt}> Mailbox full")
        except StoreError as exc:
            log.warning("lmtp %s: delivery to %s failed: %s", self.id, name, exc.text)
            return Reply.of(451, "4.3.0 <{rcpt}> Temporary failure, try again later")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("lmtp %s: internal error delivering to %s", self.id, name)
            return Reply.of(451, "4.3.0 <{rcpt}> Internal error, try again later")
        log.info("lmtp %s: delivered to %s INBOX uid %s", self.id, name, result.uids[0])
        return Reply.of(250, f"2.0.0 <{{rcpt}}> Saved as UID {result.uids[0]}")


def _remove_socket(path: Path) -> None:
    """Unlink ``path`` if it is a UNIX socket (never a regular file by mistake)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
