"""The cluster client's retry policy (issue 12): one attempt, but redirections retried."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from redis.exceptions import AskError, MovedError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stratacache_plugins.rediscache.connection import RedirectRetry


def failing(error: Exception, times: int) -> tuple[Callable[[], str], list[int]]:
    """A call that raises ``error`` its first ``times`` times, then answers; and its count."""
    calls = [0]

    def call() -> str:
        calls[0] += 1
        if calls[0] <= times:
            raise error
        return "answer"

    return call, calls


def test_the_clients_own_loop_retries_nothing() -> None:
    assert RedirectRetry().get_retries() == 0


@pytest.mark.parametrize(
    "error", [AskError("1 127.0.0.1:1"), MovedError("1 127.0.0.1:1"), TryAgainError()]
)
def test_a_redirected_transaction_is_retried(error: Exception) -> None:
    retry = RedirectRetry()
    # What redis-py's TransactionStrategy adds: connection errors and timeouts too.
    retry.update_supported_errors([RedisConnectionError, RedisTimeoutError, AskError, MovedError])
    call, calls = failing(error, 2)
    assert retry.call_with_retry(call, lambda error: None) == "answer"
    assert calls == [3]


@pytest.mark.parametrize("error", [RedisConnectionError("refused"), RedisTimeoutError("slow")])
def test_a_failed_transaction_is_not_retried(error: Exception) -> None:
    retry = RedirectRetry()
    retry.update_supported_errors([RedisConnectionError, RedisTimeoutError, AskError, MovedError])
    call, calls = failing(error, 1)
    with pytest.raises(type(error)):
        retry.call_with_retry(call, lambda error: None)
    assert calls == [1]


def test_retries_are_bounded() -> None:
    retry: Any = RedirectRetry()
    retry._backoff.compute = lambda failures: 0  # no sleeping in a unit test
    call, calls = failing(TryAgainError(), 100)
    with pytest.raises(TryAgainError):
        retry.call_with_retry(call, lambda error: None)
    assert calls == [11]  # one attempt and 10 retries
