"""`goodcry serve` as a real process on a loopback port, for tests that need real servers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

GOODCRY = str(Path(sys.executable).with_name("goodcry"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (gunicorn's workers, for its master)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


class Served:
    """One `goodcry serve` process (gunicorn master and workers) on a free loopback port."""

    def __init__(self, database_url: str, *, workers: int = 2, rate_limits: bool = False,
                 env: dict | None = None, log_path: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "GOODCRY_DATABASE_URL": database_url,
                    "GOODCRY_SECRET_KEY": "served-test-secret-0123456789abcdef",
                    "GOODCRY_RATE_LIMITS": "on" if rate_limits else "off", **(env or {})}
        self._log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [GOODCRY, "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(workers)],
            env=self.env, stdout=self._log, stderr=self._log)
        self.workers = workers

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"goodcry serve exited with {self.proc.returncode}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=10).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"goodcry serve on {self.url} not ready in {timeout}s")

    def kill_hard(self) -> list[int]:
        """SIGKILL the master and every worker at once: no graceful anything."""
        pids = [self.proc.pid, *children(self.proc.pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        for pid in pids[1:]:  # the workers were reparented; wait until they are gone
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                status = Path(f"/proc/{pid}/status").read_text() if Path(
                    f"/proc/{pid}/status").exists() else ""
                if "zombie" in status:
                    break
                time.sleep(0.05)
        return pids

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill_hard()
        if self._log is not subprocess.DEVNULL:
            self._log.close()

    def __enter__(self) -> Served:
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Client:
    """A person talking to a served goodcry over HTTP."""

    def __init__(self, base_url: str, username: str, password: str = "correct horse battery"):
        self.http = requests.Session()
        self.base_url = base_url
        answer = self.http.post(f"{base_url}/api/v1/auth/register",
                                json={"username": username, "password": password}, timeout=30)
        assert answer.status_code == 201, answer.text
        self.user_id = answer.json()["user_id"]
        self.http.headers["Authorization"] = f"Bearer {answer.json()['token']}"

    def at(self, base_url: str) -> Client:
        """The same person, talking to another server."""
        other = object.__new__(Client)
        other.http = requests.Session()
        other.http.headers.update(self.http.headers)
        other.base_url, other.user_id = base_url, self.user_id
        return other

    def get(self, path, **kw):
        return self.http.get(self.base_url + path, timeout=30, **kw)

    def post(self, path, **kw):
        return self.http.post(self.base_url + path, timeout=30, **kw)

    def new_session(self, **body) -> dict:
        answer = self.post("/api/v1/sessions", json={"moods": ["grief"], "minutes": 30, **body})
        assert answer.status_code == 201, answer.text
        return answer.json()
