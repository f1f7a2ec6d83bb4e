"""No client stalls the others: a session yields to the event loop between two commands.

Found by scripts/fuzz (live mode): 5,000 pipelined NOOPs or CAPABILITYs in one write kept a
canary client's NOOP waiting 0.5-1.2 s, as the session ran every buffered command before any
other session was read. The check here is an order, not a time: another client's command is
answered while the pipelined batch is still being worked through.
"""

from __future__ import annotations

from tests.helpers.server import RunningServer


def test_pipelined_commands_do_not_hold_up_another_client(server: RunningServer) -> None:
    a = server.raw("alice")
    b = server.raw("bob")
    n = 2000  # answers ~50 kB: they fit the socket buffers, so the server never waits to write
    a.send(b"".join(b"p%d NOOP\r\n" % i for i in range(n)))
    b.command("b1", "NOOP")
    # On loopback a written answer is in the receiver's buffer when the write returns: what
    # is there now was written before b1's answer.
    a.take_available()
    done = sum(line.startswith(b"p") for line in a.buf.split(b"\r\n"))
    assert done < n, "b1 waited for the whole pipelined batch"
    answers = a.until_tagged(f"p{n - 1}")
    assert len(answers) == n and all(" OK " in x for x in answers)
