"""An example web service run as a real subprocess with two workers (gunicorn, uvicorn).

Every request opens a new connection, so the server may give it to either worker; every
wait is bounded, and :meth:`Service.stop` ends the server (SIGTERM, then SIGKILL of its
process group).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROUTING_ATTEMPTS = 60
"""Requests tried to reach a given worker before giving up."""


@dataclass
class Service:
    """A server with two or more workers: requests on new connections, routed to a worker."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """One request on a new connection (so the server may give it to either worker).

        ``body`` is sent as JSON. The answer must be a 200 with a JSON body.
        """
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            if body is None:
                connection.request(method, path)
            else:
                headers = {"Content-Type": "application/json"}
                connection.request(method, path, body=json.dumps(body), headers=headers)
            response = connection.getresponse()
            answer = response.read()
        finally:
            connection.close()
        assert response.status == 200, (response.status, answer, self.log.read_text())
        reply: dict[str, Any] = json.loads(answer)
        return reply

    def call_on(
        self, pid: int | None, method: str, path: str, *, avoid: int = 0, body: Any = None
    ) -> dict[str, Any]:
        """Make the request until the worker ``pid`` (or any worker but ``avoid``) serves it.

        Which worker accepts a connection is up to the kernel, and it often favours one. So
        every other attempt first opens an idle connection: a sync worker (gunicorn's) that
        accepts it blocks reading it, and the request goes to the other worker; async
        workers (uvicorn's) take turns by themselves. Only requests whose effect on the
        wrong worker does not matter to the test are routed this way.
        """
        for attempt in range(ROUTING_ATTEMPTS):
            call = self.call_past_one_worker if attempt % 2 else self.call
            reply = call(method, path, body)
            if reply["pid"] == pid or (pid is None and reply["pid"] != avoid):
                return reply
        pytest.fail(f"no request reached worker {pid or f'other than {avoid}'}")

    def call_past_one_worker(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """The request, while an idle connection keeps one sync worker busy."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10):
            return self.call(method, path, body)

    def wait_for_workers(self, count: int, timeout: float) -> set[int]:
        """Wait until ``count`` workers have answered (each imports the app on its own)."""
        deadline = time.monotonic() + timeout
        pids: set[int] = set()
        attempt = 0
        while len(pids) < count:
            attempt += 1
            try:
                call = self.call_past_one_worker if attempt % 2 else self.call
                pids.add(call("GET", "/health")["pid"])
            except OSError:
                time.sleep(0.05)
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{len(pids)} of {count} workers answered:\n{self.log.read_text()}")
        return pids

    def stop(self) -> int:
        """SIGTERM, as a process manager stops a server: the workers finish, then the master."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
                pytest.fail(f"{self.name} did not stop on SIGTERM:\n{self.log.read_text()}")
        return self.process.returncode


@contextmanager
def running(
    name: str,
    command: Sequence[str],
    port: int,
    *,
    env: dict[str, str],
    cwd: Path,
    workers: int,
    boot_timeout: float,
) -> Iterator[Service]:
    """Start ``command`` (listening on ``port``), wait for its workers, stop it at the end.

    Its output goes to ``cwd/<name>.log``, shown when a request or the boot fails.
    """
    log = cwd / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(command),
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = Service(name, port, process, log)
    try:
        service.wait_for_workers(workers, boot_timeout)
        yield service
    finally:
        service.stop()
