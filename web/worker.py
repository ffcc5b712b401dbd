"""The gunicorn worker `goodcry serve` runs: gthread, with connections closed off its loop
and each response's headers written with its body.

gunicorn closes a connection as RFC 9112 (section 9.6) asks: it stops writing, then reads
until the client closes its side (2 s and 64 KiB at most), so that unread bytes of the
request cannot make the kernel reset the connection and cut off the end of the answer. The
gthread worker does that wait on its event loop's thread, which is also the thread that
accepts new connections: until the client has read the answer and closed, the worker takes
no one else, however free its threads are. On a machine whose cores the clients share, that
wait is the client's turn on a core, and then some.

This worker makes the same close without the wait: the connection stops writing and is put
on the event loop's poller, which reads what the client still sends and closes the
connection when the client closes (or sends 64 KiB more, or 2 s pass, or 128 newer
connections are waiting); meanwhile the loop goes on accepting.
"""

from __future__ import annotations

import collections
import contextlib
import selectors
import socket
import time
from functools import partial

from gunicorn import util
from gunicorn.http import wsgi
from gunicorn.workers import gthread

LINGER_S = 2.0          # as gunicorn's own graceful close
LINGER_MAX_BYTES = 65536
# At most this many connections wait for their clients at once; the oldest is closed to make
# room. Clients that never close would otherwise hold a descriptor each for LINGER_S, and a
# fast enough stream of them would run the worker out of descriptors.
LINGER_MAX_CONNECTIONS = 128


class _Lingering:
    __slots__ = ("deadline", "drained", "sock")

    def __init__(self, sock: socket.socket, deadline: float):
        self.sock: socket.socket | None = sock
        self.deadline = deadline
        self.drained = 0


class _Collected:
    """Stands in for the socket while gunicorn writes a response's headers."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.parts.append(bytes(data))


class HeldHeadersResponse(wsgi.Response):
    """gunicorn's response, its headers sent with the first bytes of the body.

    gunicorn writes a response's headers as soon as the body's first bytes come, in a write
    of their own, then the body: two writes, so the client is woken for the headers and
    then again for the body. Under load, with the clients on the server's cores, the first
    wake-up often hands the core to the client before the body is written (py-spy put 8% of
    a worker's request time in the headers' write at 100k items). Here the headers wait for
    the body's first bytes and go in the same write; a response without a body (or sent as
    a file, or in chunks) gets them before anything else, as before."""

    _held: bytes | None = None

    def send_headers(self) -> None:
        """gunicorn's headers, written into ``_held`` rather than onto the socket."""
        if self.headers_sent:
            return
        sock, self.sock = self.sock, _Collected()
        try:
            super().send_headers()
        finally:
            collected, self.sock = self.sock, sock
        self._held = b"".join(collected.parts)

    def _emit_body(self, data: bytes) -> None:
        held, self._held = self._held, None
        if held is not None and not self.chunked:
            util.write(self.sock, held + data)
            return
        if held is not None:
            util.write(self.sock, held)
        super()._emit_body(data)

    def flush_headers(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            util.write(self.sock, held)

    def sendfile(self, respiter) -> bool:
        self.send_headers()
        self.flush_headers()
        return super().sendfile(respiter)

    def close(self) -> None:
        self.send_headers()
        self.flush_headers()
        super().close()


class ThreadWorker(gthread.ThreadWorker):
    """gunicorn's gthread worker; a connection's graceful close waits on the poller."""

    def init_process(self) -> None:
        self._lingering: collections.deque[_Lingering] = collections.deque()
        # gunicorn makes each HTTP/1 response from its module's Response class (wsgi.create
        # reads the name at every call): in this worker's process, ours.
        wsgi.Response = HeldHeadersResponse
        super().init_process()

    def finish_request(self, conn, fs) -> None:
        # gunicorn ends a finished connection with conn.close(graceful=True): that close
        # is this worker's.
        conn.close = partial(self._close, conn)
        super().finish_request(conn, fs)

    def _close(self, conn, graceful: bool = False) -> None:
        sock = conn.sock
        if not graceful:
            util.close(sock)
            return
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            entry = _Lingering(sock, time.monotonic() + LINGER_S)
            self.poller.register(sock, selectors.EVENT_READ, partial(self._drain, entry))
        except (OSError, ValueError):
            util.close(sock)
            return
        self._lingering.append(entry)
        while len(self._lingering) > LINGER_MAX_CONNECTIONS:
            self._end(self._lingering.popleft())

    def _drain(self, entry: _Lingering, _sock) -> None:
        """The client sent more or closed: read it; close once it closed or sent too much."""
        try:
            while entry.drained < LINGER_MAX_BYTES:
                data = entry.sock.recv(4096)
                if not data:
                    break
                entry.drained += len(data)
        except BlockingIOError:
            return
        except OSError:
            pass
        self._end(entry)

    def _end(self, entry: _Lingering) -> None:
        sock, entry.sock = entry.sock, None
        if sock is None:
            return
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(sock)
        util.close(sock)

    def murder_keepalived(self, force: bool = False) -> None:
        """gunicorn's sweep of expired kept-alive connections, which the loop runs after
        every wait and, forced, on the way out: lingering connections past their time go
        too (they are in the order they began, so their deadlines are too)."""
        super().murder_keepalived(force)
        now = time.monotonic()
        while self._lingering and (force or self._lingering[0].sock is None
                                   or self._lingering[0].deadline <= now):
            self._end(self._lingering.popleft())
