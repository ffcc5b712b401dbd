"""`goodcry serve`'s worker closes each connection gracefully without holding its loop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.served import Served, children, free_port
from web.worker import LINGER_MAX_CONNECTIONS, LINGER_S


def _answered(sock: socket.socket) -> bytes:
    """One whole answer read from ``sock`` (its head and Content-Length bytes of body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head.split(b"\r\n", 1)[0]


def _sockets(pid: int, port: int) -> int:
    """The connections to ``port`` that process ``pid`` holds open (not its listener; one
    closed while they are counted is not counted)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local_port, state = int(fields[1].rsplit(":", 1)[1], 16), fields[3]
                if local_port == port and state != "0A":   # 0A: listening
                    inodes.add(f"socket:[{fields[9]}]")
    fds, count = Path(f"/proc/{pid}/fd"), 0
    for fd in os.listdir(fds):
        with contextlib.suppress(FileNotFoundError):
            count += os.readlink(fds / fd) in inodes
    return count


def _settled_sockets(pid: int, port: int) -> int:
    """The worker's connections once any of the readiness check's has been let go."""
    time.sleep(LINGER_S + 0.5)
    return _sockets(pid, port)


def test_a_client_that_keeps_its_connection_open_does_not_hold_up_the_next(database_url):
    with Served(database_url, workers=1) as server:
        worker = children(server.proc.pid)[0]
        before = _settled_sockets(worker, server.port)
        first = socket.create_connection(("127.0.0.1", server.port))
        try:
            first.sendall(b"GET /healthz HTTP/1.1\r\nHost: goodcry\r\n\r\n")
            assert _answered(first) == b"HTTP/1.1 200 OK"
            # The first client has its answer and keeps its side open. gunicorn's own close
            # reads from it for up to LINGER_S on the thread that accepts connections, so the
            # next client waited that long; now it is answered at once.
            started = time.monotonic()
            assert requests.get(f"{server.url}/healthz", timeout=30).status_code == 200
            assert time.monotonic() - started < LINGER_S / 2
            # The first connection is still read (what it sends is drained, not refused) ...
            first.sendall(b"trailing bytes the server never asked for")
            assert first.recv(10) == b""   # the server's end of the answer
            assert _sockets(worker, server.port) > before
            # ... until LINGER_S has passed, when the worker closes it.
            deadline = time.monotonic() + LINGER_S + 5
            while _sockets(worker, server.port) > before and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _sockets(worker, server.port) == before
        finally:
            first.close()


def test_a_client_that_closes_is_let_go_at_once(database_url):
    with Served(database_url, workers=1) as server:
        worker = children(server.proc.pid)[0]
        before = _settled_sockets(worker, server.port)
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: goodcry\r\n\r\n")
                assert _answered(sock) == b"HTTP/1.1 200 OK"
        deadline = time.monotonic() + LINGER_S / 2
        while _sockets(worker, server.port) > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _sockets(worker, server.port) == before


def test_clients_that_never_close_cannot_run_the_worker_out_of_descriptors(database_url):
    with Served(database_url, workers=1) as server:
        worker = children(server.proc.pid)[0]
        before = _settled_sockets(worker, server.port)
        held = []
        try:
            for _ in range(LINGER_MAX_CONNECTIONS + 40):
                sock = socket.create_connection(("127.0.0.1", server.port))
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: goodcry\r\n\r\n")
                assert _answered(sock) == b"HTTP/1.1 200 OK"
                held.append(sock)   # never closed by the client until the end
            assert _sockets(worker, server.port) <= before + LINGER_MAX_CONNECTIONS
            assert requests.get(f"{server.url}/healthz", timeout=30).status_code == 200
        finally:
            for sock in held:
                sock.close()


class _Recorded:
    """A socket as gunicorn's response sees it, recording each write; it gives the request's
    bytes to gunicorn's own parser."""

    def __init__(self, request: bytes):
        self.request, self.writes = request, []

    def recv(self, size: int) -> bytes:
        chunk, self.request = self.request[:size], self.request[size:]
        return chunk

    def sendall(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def send(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        return len(data)


def _respond(response_class, request: bytes, status: str, headers: list, body: list[bytes]):
    from gunicorn.config import Config
    from gunicorn.http.parser import RequestParser

    sock = _Recorded(request)
    config = Config()
    req = next(iter(RequestParser(config, sock, ("127.0.0.1", 1))))
    resp = response_class(req, sock, config)
    resp.start_response(status, headers)
    for part in body:
        resp.write(part)
    resp.close()
    # The same bytes but for the Date header, which says when.
    sent = b"".join(sock.writes)
    return [w for w in sock.writes if w], b"\r\n".join(
        line for line in sent.split(b"\r\n") if not line.startswith(b"Date: "))


def test_a_response_goes_out_as_gunicorns_own_with_its_headers_in_the_bodys_first_write():
    from gunicorn.http.wsgi import Response

    from web.worker import HeldHeadersResponse

    get = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
    cases = [
        (get, "200 OK", [("Content-Type", "application/json"), ("Content-Length", "11")],
         [b"hello", b" world"]),
        (get, "201 CREATED", [("Content-Length", "2")], [b"{}"]),
        (get, "204 NO CONTENT", [], []),
        (get, "200 OK", [("Content-Type", "text/plain")], [b"chunk one", b"chunk two"]),
        (b"HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n", "200 OK", [("Content-Length", "5")],
         [b"hello"]),
        (get, "200 OK", [("Content-Length", "0")], [b""]),
    ]
    for request, status, headers, body in cases:
        theirs, their_bytes = _respond(Response, request, status, headers, body)
        ours, our_bytes = _respond(HeldHeadersResponse, request, status, headers, body)
        assert our_bytes == their_bytes, (status, headers)
        if headers and headers[-1] == ("Content-Length", "11"):
            # gunicorn's: the headers, then each part; ours: the headers with the first.
            assert len(theirs) == 3 and len(ours) == 2
            assert ours[0].startswith(b"HTTP/1.1 200 OK") and ours[0].endswith(b"\r\n\r\nhello")
    one = _respond(HeldHeadersResponse, get, "201 CREATED", [("Content-Length", "2")], [b"{}"])
    assert len(one[0]) == 1 and one[0][0].endswith(b"\r\n\r\n{}")


# `goodcry serve`'s gunicorn settings and worker class, serving tests/pid_app.py.
PID_SERVER = """
import sys
from gunicorn.app.base import BaseApplication
from recommender.cli import gunicorn_settings
from tests.pid_app import app

class Server(BaseApplication):
    def load_config(self):
        for name, value in gunicorn_settings("127.0.0.1", int(sys.argv[1]), 2, 1).items():
            self.cfg.set(name, value)

    def load(self):
        return app

Server().run()
"""


@contextlib.contextmanager
def _pid_server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", PID_SERVER, str(port)],
                            cwd=Path(__file__).parent.parent, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while len(children(proc.pid)) < 2 or not _answers(url):
            assert proc.poll() is None and time.monotonic() < deadline, "server not up"
            time.sleep(0.1)
        yield proc, url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _served_by(url: str, n: int, path: str = "/") -> list[int]:
    """Which worker answered each of ``n`` requests made one after another."""
    return [int(requests.get(url + path, timeout=10).text) for _ in range(n)]


# Of 60 requests made one at a time, how many must go to the first choice. By chance each
# worker takes about half (33 and 27 before there was a first choice). The first choice
# takes every one it is on a core for within DEFER_S: on a loaded machine the scheduler
# sometimes keeps it off longer, and the other worker takes that one (3 of 60 once in CI).
MOSTLY = 54


def test_one_request_at_a_time_goes_to_one_worker_while_it_is_free():
    """Two free workers: the first choice takes the new connections (the other would find
    its caches cold)."""
    with _pid_server() as (proc, url):
        _served_by(url, 5)
        served = Counter(_served_by(url, 60))
        assert set(served) <= set(children(proc.pid))
        assert served.most_common(1)[0][1] >= MOSTLY, served


def test_the_other_worker_takes_connections_at_once_while_the_first_choice_is_busy():
    """While one worker is busy, new connections go to the other at once. The case that
    matters is the first choice busy: the other must not wait for it. The first choice takes
    the slow request almost always; when the scheduler kept it off a core and the other took
    it (once in CI), the trial is made again."""
    with _pid_server() as (_proc, url):
        first_was_busy = False
        for _trial in range(5):
            first = Counter(_served_by(url, 10)).most_common(1)[0][0]
            with ThreadPoolExecutor(max_workers=2) as pool:
                started = time.monotonic()
                slow = pool.submit(_served_by, url, 1, "/?sleep=1.5")
                time.sleep(0.3)  # the slow one has been taken
                quick = [pool.submit(_served_by, url, 1) for _ in range(5)]
                others = [f.result()[0] for f in quick]
                quick_done = time.monotonic() - started
                busy = slow.result()[0]
            # Whichever worker is busy, the other answers every quick one, at once.
            assert busy not in others and len(set(others)) == 1, (busy, others)
            assert quick_done < 1.2, quick_done  # not queued behind the slow request
            if busy == first:
                first_was_busy = True
                break
        assert first_was_busy, "the first choice never took the slow request in 5 trials"


def test_when_the_first_choice_dies_another_worker_takes_its_place():
    with _pid_server() as (proc, url):
        first = Counter(_served_by(url, 10)).most_common(1)[0][0]
        other = next(pid for pid in children(proc.pid) if pid != first)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(set(children(proc.pid)) - {first}) < 2:  # gunicorn starts another
            assert time.monotonic() < deadline
            time.sleep(0.1)
        _served_by(url, 5)
        served = Counter(_served_by(url, 60))
        # The worker that was there takes over; the new one is second choice.
        assert served[other] >= MOSTLY, served
