"""Real redis-server processes for the tests, each on a free loopback port (never 6379)."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

INSTALL_HINT = (
    "redis-server is not installed, and the Redis tests need a real one: run `make test`"
    " (it installs it with apt-get when run as root) or `apt-get install redis-server`."
)


def redis_server_binary() -> str:
    """Return the path of redis-server, or fail the test (never skip) when it is missing."""
    path = shutil.which("redis-server")
    if path is None:
        pytest.fail(INSTALL_HINT)
    return path


REPLICATION_OPTIONS = [
    # For the servers of a topology (cluster nodes, the sentinels' master and replica).
    # A replica syncs at once: by default the master waits 5 s for more replicas to join.
    "--repl-diskless-sync-delay",
    "0",
    # ... and loads from the socket, writing no dump.rdb that a restart would load again: a
    # killed node comes back empty, like the persistence-free server it is.
    "--repl-diskless-load",
    "swapdb",
]

_launched: set[subprocess.Popen[bytes]] = set()
"""Every server process the tests launched: killed at exit, should a fixture not stop it."""


@atexit.register
def _kill_leftovers() -> None:
    for process in _launched:
        if process.poll() is None:
            with contextlib.suppress(OSError):
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait(timeout=5)


def wait_until(
    check: Callable[[], str | None], what: str, timeout: float = 10, interval: float = 0.02
) -> float:
    """Poll ``check`` until it returns None; return the seconds it took.

    ``check`` returns why it is not satisfied yet; a Redis or socket error counts as not yet.
    After ``timeout`` seconds, raise :class:`TimeoutError` naming ``what`` and the last reason.
    """
    start = time.monotonic()
    while True:
        try:
            reason = check()
        except (redis.RedisError, OSError) as error:
            reason = f"{type(error).__name__}: {error}"
        elapsed = time.monotonic() - start
        if reason is None:
            return elapsed
        if elapsed > timeout:
            raise TimeoutError(f"{what}: still not the case after {timeout:g} s: {reason}")
        time.sleep(interval)


def stop_all(servers: Iterable[RedisServer]) -> None:
    """Stop several servers at once: signal them all, then reap each (see :meth:`stop`)."""
    servers = list(servers)
    for server in servers:
        if server.process is not None and server.process.poll() is None:
            server.process.send_signal(signal.SIGCONT)
            server.process.terminate()
    for server in servers:
        server.stop()


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports nothing listens on right now (none of them 6379)."""
    ports: list[int] = []
    with contextlib.ExitStack() as stack:
        while len(ports) < count:
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port != 6379:
                ports.append(port)
    return ports


def free_port() -> int:
    """A TCP port nothing listens on right now (not 6379)."""
    return free_ports(1)[0]


class RedisServer:
    """One redis-server on 127.0.0.1, started and stopped by the tests.

    It persists nothing and allows ``DEBUG`` from local clients, for fault injection.
    """

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.options: list[str] = []
        """More command-line options for the next starts (``["--key-load-delay", "1000"]``)."""
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **options: object) -> redis.Redis:
        """A plain redis-py client to inspect or prepare the server."""
        return redis.Redis(host="127.0.0.1", port=self.port, **options)  # type: ignore[arg-type]

    def command(self) -> list[str]:
        """The command line of the next start: fixed options first, then :attr:`options`."""
        return [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--enable-debug-command",
            "local",
            "--loglevel",
            "warning",
            *self.options,
        ]

    def probe(self) -> redis.Redis:
        """A client that gives up fast (0.5 s, no retry), for health checks; close it after use."""
        return self.client(
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def launch(self) -> None:
        """Start the process without waiting for it (see :meth:`wait_started`)."""
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _launched.add(self.process)

    def wait_started(self, *, loaded: bool = True, timeout: float = 10) -> None:
        """Wait until the launched server answers PING (see :meth:`start` for ``loaded``)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.client(socket_timeout=0.5, retry=Retry(NoBackoff(), 0)) as probe:
                    if probe.ping():
                        return
            except redis.BusyLoadingError:
                if not loaded:
                    return
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def start(self, *, loaded: bool = True) -> RedisServer:
        """Start the server and wait until it answers PING.

        With ``loaded=False``, return as soon as it answers at all, possibly ``LOADING`` (it
        loads the ``dump.rdb`` of its directory, if a test saved one there).
        """
        self.launch()
        self.wait_started(loaded=loaded)
        return self

    def stop(self) -> None:
        """Stop the server (SIGKILL if it does not exit at once) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=5)
        self.process = None

    def restart(self) -> None:
        """Start again on the same port (after :meth:`kill` or :meth:`stop`)."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open, nothing answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def command_counts(self) -> dict[str, int]:
        """Calls per command since the last ``CONFIG RESETSTAT`` (from ``INFO commandstats``)."""
        stats = self.client().info("commandstats")
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}

    def reset_stats(self) -> None:
        """``CONFIG RESETSTAT``: start counting commands afresh."""
        self.client().config_resetstat()
