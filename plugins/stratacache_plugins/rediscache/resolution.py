"""Connecting within the connect timeout, name resolution included.

redis-py bounds the TCP connect by ``socket_connect_timeout`` but resolves the host name
first, with a blocking ``getaddrinfo`` that no timeout covers: a slow or unreachable DNS
server holds every new connection for the resolver's own timeout (5 s per attempt by
default). These connection classes resolve the name on a worker thread and wait for it at
most until the connect deadline; the connect then gets what is left of the same deadline.
Callers that connect to one host while its lookup is pending share that lookup, so a slow
resolver never piles up threads. A numeric address is connected to directly.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from redis.connection import Connection, SSLConnection
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["BoundedConnection", "BoundedSSLConnection", "bounded_class", "resolve"]

Address = tuple[Any, ...]

# The lookup in progress for each host: one thread each, a daemon, so that a lookup the
# resolver holds never delays the interpreter's exit.
_pending: dict[tuple[str, int, int], Future[list[Address]]] = {}
_lock = threading.Lock()


def _forget_lookups_after_fork() -> None:
    # The child has none of its parent's lookup threads: their futures would never finish.
    global _lock
    _pending.clear()
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_lookups_after_fork)


def _is_numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _lookup(host: str, port: int, family: int) -> list[Address]:
    return [info[4] for info in socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)]


def resolve(host: str, port: int, family: int, timeout: float | None) -> list[Address]:
    """The socket addresses of ``host``, waiting at most ``timeout`` seconds for them.

    Raises:
        redis.exceptions.TimeoutError: The lookup took longer than ``timeout``; it goes on
            in the background, and the next connect to ``host`` waits for the same one.
        OSError: The name does not resolve (``socket.gaierror``).
    """
    if timeout is None or _is_numeric(host):
        return _lookup(host, port, family)
    key = (host, port, family)
    with _lock:
        future = _pending.get(key)
        if future is None:
            future = _pending[key] = Future()
            name = f"stratacache-resolve-{host}"
            threading.Thread(target=_run_lookup, args=(key, future), name=name, daemon=True).start()
    try:
        return future.result(timeout=max(timeout, 0.0))
    except FutureTimeout:
        raise RedisTimeoutError(
            f"resolving the host name {host!r} took longer than the connect timeout "
            f"({timeout} s); check the DNS server, or give the server's address"
        ) from None


def _run_lookup(key: tuple[str, int, int], future: Future[list[Address]]) -> None:
    try:
        addresses = _lookup(*key)
    except BaseException as exc:  # handed to every caller waiting on it
        _forget(key, future)
        future.set_exception(exc)
    else:
        _forget(key, future)
        future.set_result(addresses)


def _forget(key: tuple[str, int, int], future: Future[list[Address]]) -> None:
    # Before the callers wake: a connect after this one looks the name up again.
    with _lock:
        if _pending.get(key) is future:
            del _pending[key]


class _Bounded:
    """The resolution and the connect of a TCP connection, both within one deadline."""

    host: str
    port: int
    socket_type: int
    socket_connect_timeout: float | None

    def _bounded_tcp_connect(self) -> socket.socket:
        name, timeout = self.host, self.socket_connect_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        addresses = resolve(name, self.port, self.socket_type, timeout)
        error: OSError | None = None
        try:
            for address in addresses:
                # Connection._connect, on a numeric host (its lookup is then immediate) and
                # with what is left of the deadline.
                self.host = str(address[0])
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise RedisTimeoutError(f"connecting to {name!r} timed out")
                    self.socket_connect_timeout = left
                try:
                    return Connection._connect(self)  # type: ignore[arg-type, no-untyped-call, no-any-return]
                except OSError as exc:
                    error = exc
        finally:
            self.host, self.socket_connect_timeout = name, timeout
        raise error or OSError(f"the host name {name!r} resolved to no address")


class BoundedConnection(_Bounded, Connection):
    """redis-py's TCP connection, with the name resolution inside the connect timeout."""

    def _connect(self) -> socket.socket:
        return self._bounded_tcp_connect()


class BoundedSSLConnection(_Bounded, SSLConnection):
    """redis-py's TLS connection, with the name resolution inside the connect timeout.

    The TLS handshake checks the certificate against the host name, never the address.
    """

    def _connect(self) -> socket.socket:
        sock = self._bounded_tcp_connect()
        try:
            return self._wrap_socket_with_ssl(sock)  # type: ignore[no-untyped-call, no-any-return]
        except BaseException:
            sock.close()
            raise


_BOUNDED: dict[type[Any], type[Any]] = {
    Connection: BoundedConnection,
    SSLConnection: BoundedSSLConnection,
}


def bounded_class(connection_class: type[Any]) -> type[Any]:
    """The bounded twin of redis-py's ``Connection`` or ``SSLConnection``; others as given."""
    return _BOUNDED.get(connection_class, connection_class)
