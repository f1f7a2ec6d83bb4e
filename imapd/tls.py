"""TLS for the IMAP listeners: the server context from certificate files, its reload, and the
handover of a connection to TLS (implicit TLS on ``listen_tls`` and STARTTLS alike).

Owns: `build_context` (TLS 1.2 or later, server side, no client certificates, no
renegotiation), `ServerTls` (the current context; `reload` on SIGHUP swaps in a new one for
new connections while existing ones keep the context they were handshaken with), and
`upgrade`, which runs the server-side handshake on a plain transport with `loop.start_tls`
and returns *fresh* stream objects.

Implicit TLS uses ``start_server(ssl=listener_context)``, whose context is fixed when the
listener is bound; its servername callback, which OpenSSL calls for every ClientHello (with
None when the client sent no SNI), moves the handshake to the current context, as the
SNI-based certificate selection of Python's ssl docs does. So a reload needs no new listener.

The STARTTLS injection defence (RFC 3501 §6.2.1, RFC 2595 §3.1; CVE-2011-0411 in Postfix,
CVE-2011-1926 in Cyrus): bytes a client pipelined after ``STARTTLS\\r\\n`` were sent in the
clear, so they must never run as commands. The session takes whatever the sans-IO core
still buffers (`ServerConnection.take_buffered_data`) and drops it; `upgrade` reads the TLS
side through a new `StreamReader`, so plaintext already sitting in the plain reader's buffer
is abandoned with it (a layer switch hands over between objects). mox and go-imap
feed such bytes to the handshake instead; asyncio's `start_tls` offers no way to, and a
client waits for the tagged OK before its ClientHello (RFC 3501 §6.2.1), so dropping them
fails only clients that were wrong anyway.

Must not import `store` or `notify`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("imapd.tls")

#: Seconds the TLS close (close_notify both ways) may take before the socket is cut.
SHUTDOWN_TIMEOUT = 2.0


class TlsError(Exception):
    """The certificate or key cannot be loaded; the message names the file and option."""


def build_context(cert_file: Path, key_file: Path | None) -> ssl.SSLContext:
    """A server context: TLS 1.2+ (RFC 8996 deprecates 1.0 and 1.1; RFC 8314 §4.1 asks
    for 1.2 or later), the certificate chain and key from PEM files (the key may sit in the
    certificate file), OpenSSL's default ciphers, no renegotiation, no client certificates."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as exc:
        option = "tls_key_file" if key_file and exc.filename == str(key_file) else "tls_cert_file"
        raise TlsError(f"{option}: {exc.filename or cert_file}: no such file") from exc
    except (OSError, ssl.SSLError) as exc:
        where = f"{cert_file}" + (f" and {key_file}" if key_file else "")
        raise TlsError(f"tls_cert_file/tls_key_file: cannot load {where}: {exc}") from exc
    return context


@dataclass
class ServerTls:
    """The certificate files and the context new connections get (swapped by `reload`)."""

    cert_file: Path
    key_file: Path | None
    context: ssl.SSLContext
    #: The implicit-TLS listener's context: the first one, switching to `context`.
    listener_context: ssl.SSLContext

    @classmethod
    def load(cls, cert_file: Path, key_file: Path | None) -> ServerTls:
        context = build_context(cert_file, key_file)
        tls = cls(cert_file, key_file, context, context)
        context.sni_callback = tls._current
        return tls

    def _current(self, ssl_object: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        if ssl_object.context is not self.context:
            ssl_object.context = self.context

    def reload(self) -> bool:
        """Read the files again (SIGHUP). On failure keep the old context and say why:
        a half-renewed certificate must not take the server's TLS down."""
        try:
            self.context = build_context(self.cert_file, self.key_file)
        except TlsError as exc:
            log.error("TLS reload failed, keeping the previous certificate: %s", exc)
            return False
        log.info("TLS certificate reloaded from %s", self.cert_file)
        return True


async def upgrade(
    transport: asyncio.BaseTransport,
    context: ssl.SSLContext,
    *,
    handshake_timeout: float,
    limit: int,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Run the server-side TLS handshake on ``transport``; new reader and writer for the
    TLS layer. Raises OSError (ssl.SSLError, ConnectionError) or TimeoutError on failure.

    The caller keeps its plain StreamWriter alive until the connection is closed: a
    StreamWriter closes its transport when garbage-collected (and that transport now
    carries the TLS layer)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    tls_transport = await loop.start_tls(
        transport,  # type: ignore[arg-type]  # typeshed wants a WriteTransport
        protocol,
        context,
        server_side=True,
        ssl_handshake_timeout=handshake_timeout,
        ssl_shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    if tls_transport is None:  # typeshed: Transport | None; only None when closing
        raise ConnectionResetError("connection closed during the TLS handshake")
    # start_tls does not announce the new transport to the protocol (asyncio and uvloop
    # both pass call_connection_made=False): do it, so the reader has its transport for
    # flow control and the protocol knows it runs over TLS.
    protocol.connection_made(tls_transport)
    writer = asyncio.StreamWriter(tls_transport, protocol, reader, loop)
    return reader, writer


def describe(writer: asyncio.StreamWriter) -> str:
    """``TLSv1.3 TLS_AES_256_GCM_SHA384`` for the logs; "" without TLS."""
    ssl_object = writer.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        return ""
    cipher = ssl_object.cipher()
    return f"{ssl_object.version()} {cipher[0] if cipher else ''}".strip()
