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

Which worker takes a new connection when more than one is free is left to chance by the
kernel (every free worker is woken; the first to call accept wins). So one request at a
time goes to either worker, and each finds its caches cold: the CPU's, and SQLite's page
cache, which a connection drops whenever another process has committed. Here one worker
is the first choice (whichever holds a lock on a file the workers share; another takes
the lock over if it dies): while it is free the others leave new connections to it, and
they take them at once when it is busy. At 100k items, one session request at a time took
3.89-4.64 ms (median) this way and 4.36-5.25 ms with the workers taking turns, measured in
alternating blocks on one server (BENCHMARKS.md).
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import mmap
import os
import selectors
import socket
import tempfile
import threading
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
# How long a worker that is not the first choice leaves a new connection to the first
# choice while that one says it is free (it takes one in tens of microseconds; if it has not
# by then, say its process is stalled, the connection is not kept waiting longer).
DEFER_S = 0.002
DEFER_POLL_S = 0.00005
# What the first choice says of itself (the others leave new connections to it unless BUSY).
BUSY, FREE, FINISHING = 0, 1, 2


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
    # Called as the answer starts out (its headers, with the body's first bytes if any):
    # the worker's, to say it is about to be free (ThreadWorker._answering).
    on_answer = None

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
        if held is not None and self.on_answer is not None:
            self.on_answer()
        if held is not None and not self.chunked:
            util.write(self.sock, held + data)
            return
        if held is not None:
            util.write(self.sock, held)
        super()._emit_body(data)

    def flush_headers(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            if self.on_answer is not None:
                self.on_answer()
            util.write(self.sock, held)

    def sendfile(self, respiter) -> bool:
        self.send_headers()
        self.flush_headers()
        return super().sendfile(respiter)

    def close(self) -> None:
        self.send_headers()
        self.flush_headers()
        super().close()


class _FirstChoice:
    """What the workers of one server share to agree on their first choice: a file (already
    unlinked: each worker opens it again through the arbiter's descriptor, so each has its
    own lock on it) and one shared byte, what the first choice says of itself (BUSY, FREE,
    FINISHING)."""

    def __init__(self) -> None:
        handle, path = tempfile.mkstemp(prefix="goodcry-first-choice-")
        os.unlink(path)
        self.fd = handle
        self.free = mmap.mmap(-1, 1)  # anonymous and shared: the forked workers see it

    def lock(self) -> int | None:
        """A descriptor of this worker's own on the shared file (None where the system has
        no /proc to open it through: then no worker is anyone's first choice)."""
        try:
            return os.open(f"/proc/self/fd/{self.fd}", os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return None


class ThreadWorker(gthread.ThreadWorker):
    """gunicorn's gthread worker; a connection's graceful close waits on the poller, and
    while the first-choice worker is free, the others leave new connections to it."""

    _shared: _FirstChoice | None = None

    @classmethod
    def check_config(cls, cfg, log) -> None:
        super().check_config(cfg, log)
        # Run by the arbiter before it forks the workers: they inherit what is made here.
        if cls._shared is None:
            cls._shared = _FirstChoice()

    def init_process(self) -> None:
        self._lingering: collections.deque[_Lingering] = collections.deque()
        # gunicorn makes each HTTP/1 response from its module's Response class (wsgi.create
        # reads the name at every call): in this worker's process, ours.
        wsgi.Response = HeldHeadersResponse
        HeldHeadersResponse.on_answer = self._answering
        shared = type(self)._shared
        self._lock_fd = shared.lock() if shared is not None else None
        self._first = False
        if self._lock_fd is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._first = True
            except BlockingIOError:
                # Wait for the lock on a thread of its own: the kernel hands it over the
                # moment its holder exits, so a worker already running (its caches warm)
                # takes the first choice's place before the one started to replace it.
                threading.Thread(target=self._wait_to_lead, daemon=True,
                                 name="goodcry-first-choice").start()
        super().init_process()

    def _wait_to_lead(self) -> None:
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self._shared.free[0] = FREE if self._accepting else BUSY
        self._first = True

    def _say_free(self, free: bool) -> None:
        if self._first:
            self._shared.free[0] = FREE if free else BUSY

    def _answering(self) -> None:
        """An answer is going out: once it has, the loop closes the connection and accepts
        again in a moment. Said before the answer's first bytes, so that a client sending
        its next request as soon as it has read the answer (one at a time, as a person's
        browser does) cannot find the first choice busy. Without it, about one request in
        four made one at a time went to another worker (286 of 1,117 in one such run)."""
        if self._first and self.cfg.threads == 1:  # (with more threads it says nothing)
            self._shared.free[0] = FINISHING

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled)
        # Stopping at its limit of connections, the worker said BUSY as it accepted the
        # last one, and may have said FINISHING since (a quick answer goes out before the
        # loop comes round): that stands. Stopping for good, it is busy from now on.
        if enabled or not self.alive:
            self._say_free(enabled)

    def accept(self, listener) -> None:
        if self._first:
            self._say_free(False)  # (taken again below if nothing was there to accept)
        elif self._shared is not None:
            # Leave it to the first choice while that one is free; then take it if it is
            # still there (the accept below finds nothing if the first choice took it).
            deadline = time.monotonic() + DEFER_S
            while self._shared.free[0] and time.monotonic() < deadline:
                time.sleep(DEFER_POLL_S)
        super().accept(listener)
        if self._first and self.nr_conns < self.worker_connections:
            self._say_free(True)

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
