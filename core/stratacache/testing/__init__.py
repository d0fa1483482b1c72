"""The backend conformance suite, shipped so that any backend can prove it keeps the contract.

Subclass :class:`BackendConformance` in a test module and give it a ``make_backend`` fixture
that returns a factory of fresh, empty backend instances::

    import pytest
    from stratacache.testing import BackendConformance
    from mypackage import MyCache

    class TestMyCache(BackendConformance):
        @pytest.fixture
        def make_backend(self, tmp_path):
            return lambda **options: MyCache(**options)

The factory receives the options a test needs (``default_timeout``); everything else is up
to the fixture. Set ``stores_values = False`` for a backend that stores nothing (NullCache):
the same tests then check that every read misses. Set ``accepts_clock = True`` when the
factory passes ``clock=`` on to the backend: the expiry tests then move that clock instead of
sleeping. A backend that overrides
:meth:`~stratacache.Backend.lookup_entry` must report each hit's remaining lifetime; one that
keeps the default, or sets ``knows_remaining = False``, must report ``None``. The
monitoring tests check the operator's methods (``ping``, ``describe``, ``store_stats``) and
that healthy operations count no error. Keys are ``str``: every operation raises
:func:`stratacache.key_type_error` for any other key. This module needs pytest
(``pip install 'stratacache[testing]'``).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar

import pytest

from stratacache import NO_VALUE, Backend, BackendStats
from stratacache.testing.clock import FakeClock
from stratacache.testing.stack import StackConformance, StackFactory

__all__ = [
    "BackendConformance",
    "BackendFactory",
    "FakeClock",
    "StackConformance",
    "StackFactory",
]

BackendFactory = Callable[..., Backend]
"""Builds a fresh, empty backend; keyword arguments are constructor options."""

SAMPLE_VALUES: list[Any] = [
    0,
    -17,
    2**70,
    1.5,
    "text",
    "ünïcødé ✓",
    b"\x00bytes\xff",
    [1, "two", 3.0],
    {"nested": {"a": [1, 2]}, "b": None},
    (1, 2),
    {1, 2, 3},
    True,
    "",
]


# Every operation that takes a key, in the contract of Backend.
KEY_OPERATIONS = ["get", "lookup", "lookup_entry", "has", "delete", "set", "add", "inc"]
KEY_OPERATIONS += ["set_tracked", "delete_many", "get_many"]


class BackendConformance:
    """The behaviour every stratacache backend shares (cachelib's semantics plus ours)."""

    stores_values: ClassVar[bool] = True
    """False for a backend that stores nothing: reads must then always miss."""

    knows_remaining: ClassVar[bool] = True
    """False for a backend whose ``lookup_entry`` cannot tell the remaining lifetime.

    A backend that keeps the default ``lookup_entry`` cannot, whatever this says.
    """

    accepts_clock: ClassVar[bool] = False
    """True when the factory takes ``clock=``, a callable returning the time expiry follows.

    The expiry tests then move that clock instead of sleeping. A store that keeps time
    itself (a server) leaves it False: those tests sleep past the timeouts in real time.
    """

    def timed(self, make_backend: BackendFactory, **options: Any) -> tuple[Backend, Any]:
        """A backend and a way to let ``seconds`` pass for its expiry (its clock, or sleep)."""
        if not self.accepts_clock:
            return make_backend(**options), time.sleep
        clock = FakeClock()
        return make_backend(clock=clock, **options), clock.advance

    @pytest.fixture
    def make_backend(self) -> BackendFactory:
        """Return a factory of fresh, empty backends (override in the subclass)."""
        raise NotImplementedError("define a make_backend fixture in your test class")

    @pytest.fixture
    def backend(self, make_backend: BackendFactory) -> Backend:
        """A fresh backend with the default options."""
        return make_backend()

    def hit(self, value: Any) -> Any:
        """What a read returns after ``value`` was stored."""
        return value if self.stores_values else None

    # -- reads and writes -----------------------------------------------------------------

    def test_is_a_backend(self, backend: Backend) -> None:
        assert isinstance(backend, Backend)

    def test_miss(self, backend: Backend) -> None:
        assert backend.get("absent") is None
        assert backend.lookup("absent") is NO_VALUE
        assert backend.has("absent") is False

    @pytest.mark.parametrize("value", SAMPLE_VALUES, ids=repr)
    def test_set_then_get(self, backend: Backend, value: Any) -> None:
        assert backend.set("key", value) is True
        assert backend.get("key") == self.hit(value)
        assert backend.has("key") is self.stores_values

    @pytest.mark.parametrize("value", SAMPLE_VALUES, ids=repr)
    def test_compiled_lookup_reads_what_lookup_reads(self, backend: Backend, value: Any) -> None:
        compiled = backend.compiled_lookup()  # what the decorator's hot path calls
        assert compiled("key") is NO_VALUE
        backend.set("key", value)
        assert compiled("key") == backend.lookup("key")
        assert (compiled("key") is NO_VALUE) is not self.stores_values
        backend.delete("key")
        assert compiled("key") is NO_VALUE

    def test_none_is_a_value(self, backend: Backend) -> None:
        backend.set("none", None)
        assert backend.lookup("none") is (None if self.stores_values else NO_VALUE)

    def test_overwrite(self, backend: Backend) -> None:
        backend.set("key", "first")
        backend.set("key", "second")
        assert backend.get("key") == self.hit("second")

    def test_add_does_not_overwrite(self, backend: Backend) -> None:
        assert backend.add("key", "first") is True
        assert backend.add("key", "second") is (not self.stores_values)
        assert backend.get("key") == self.hit("first")

    def test_delete(self, backend: Backend) -> None:
        backend.set("key", 1)
        assert backend.delete("key") is self.stores_values
        assert backend.get("key") is None
        assert backend.lookup("key") is NO_VALUE

    def test_delete_missing(self, backend: Backend) -> None:
        assert isinstance(backend.delete("absent"), bool)

    def test_many(self, backend: Backend) -> None:
        assert sorted(backend.set_many({"a": 1, "b": 2, "c": None})) == ["a", "b", "c"]
        assert backend.get_many("a", "b", "x") == [self.hit(1), self.hit(2), None]
        assert backend.get_dict("a", "b") == {"a": self.hit(1), "b": self.hit(2)}
        assert sorted(backend.delete_many("a", "b")) == ["a", "b"]
        assert backend.get_many("a", "b") == [None, None]

    def test_clear(self, backend: Backend) -> None:
        backend.set_many({"a": 1, "b": 2})
        assert backend.clear() is True
        assert backend.get_many("a", "b") == [None, None]

    def test_inc_dec(self, backend: Backend) -> None:
        assert backend.inc("counter") == 1
        assert backend.inc("counter", 5) == (6 if self.stores_values else 5)
        assert backend.dec("counter", 2) == (4 if self.stores_values else -2)
        assert backend.get("counter") == self.hit(4)

    def test_keys_are_opaque_text(self, backend: Backend) -> None:
        keys = ["spaces in key", "ünïcødé", "../../etc/passwd", "a" * 1000, "x:y/z\\w", "%s{}"]
        for i, key in enumerate(keys):
            backend.set(key, i)
        for i, key in enumerate(keys):
            assert backend.get(key) == self.hit(i), key

    @pytest.mark.parametrize("key", [1, 2.5, (1, 2), b"key", None, ["unhashable"]], ids=repr)
    def test_keys_are_str_in_every_operation(self, backend: Backend, key: Any) -> None:
        """A key that is not a ``str`` is refused alike by every backend, with one message."""
        outcomes = {}
        for operation in KEY_OPERATIONS:
            arguments = (key, "value") if operation in {"set", "add", "set_tracked"} else (key,)
            try:
                getattr(backend, operation)(*arguments)
            except TypeError as exc:
                outcomes[operation] = "refused" if "cache keys are str" in str(exc) else str(exc)
            else:
                outcomes[operation] = "accepted"
        assert set(outcomes.values()) == {"refused"}, outcomes

    def test_serializing_backends_return_copies(self, backend: Backend) -> None:
        original = {"list": [1]}
        backend.set("key", original)
        first = backend.get("key")
        if not self.stores_values:
            assert first is None
        elif backend.serializes:
            assert first is not original
            first["list"].append(2)
            assert backend.get("key") == {"list": [1]}
        else:
            assert first is original, "a backend that does not serialize keeps the object"

    # -- timeouts -------------------------------------------------------------------------

    def test_zero_timeout_never_expires(self, make_backend: BackendFactory) -> None:
        backend, wait = self.timed(make_backend, default_timeout=1)
        backend.set("forever", 1, timeout=0)
        backend.set("short", 1)
        wait(1.3)
        assert backend.get("forever") == self.hit(1)
        assert backend.get("short") is None
        assert backend.has("short") is False

    def test_timeouts_expire(self, make_backend: BackendFactory) -> None:
        backend, wait = self.timed(make_backend)
        backend.set("int", 1, timeout=1)
        backend.set("delta", 2, timeout=timedelta(seconds=1))
        backend.set("long", 3, timeout=60)
        assert backend.get("int") == self.hit(1)
        wait(1.3)
        assert backend.get_many("int", "delta", "long") == [None, None, self.hit(3)]
        assert backend.lookup_entry("int")[0] is NO_VALUE

    # -- remaining lifetime (lookup_entry) ------------------------------------------------

    def remaining_of(self, backend: Backend, key: str, expected: Any) -> float | None:
        """Read ``key`` with ``lookup_entry``; check the value against ``lookup``'s."""
        value, remaining = backend.lookup_entry(key)
        if not self.stores_values:
            assert value is NO_VALUE
            return None
        assert value == expected
        assert value == backend.lookup(key), "lookup_entry reads what lookup reads"
        if not self.tells_remaining(backend):
            assert remaining is None
        return remaining

    def tells_remaining(self, backend: Backend) -> bool:
        """Whether ``backend``'s hits must report their remaining lifetime."""
        overridden = type(backend).lookup_entry is not Backend.lookup_entry
        return self.stores_values and self.knows_remaining and overridden

    def test_lookup_entry_miss(self, backend: Backend) -> None:
        assert backend.lookup_entry("absent")[0] is NO_VALUE

    def test_lookup_entry_remaining(self, backend: Backend) -> None:
        backend.set("ten", {"v": 1}, timeout=10)
        remaining = self.remaining_of(backend, "ten", self.hit({"v": 1}))
        if self.tells_remaining(backend):
            assert remaining is not None
            assert 0 < remaining <= 10

    def test_lookup_entry_default_timeout(self, make_backend: BackendFactory) -> None:
        backend = make_backend(default_timeout=60)
        backend.set("default", "v")
        remaining = self.remaining_of(backend, "default", self.hit("v"))
        if self.tells_remaining(backend):
            assert remaining is not None
            assert 50 < remaining <= 60

    def test_lookup_entry_never_expires(self, backend: Backend) -> None:
        backend.set("forever", "v", timeout=0)
        remaining = self.remaining_of(backend, "forever", self.hit("v"))
        if self.tells_remaining(backend):
            assert remaining == math.inf

    def test_lookup_entry_none_is_a_value(self, backend: Backend) -> None:
        backend.set("none", None)
        value, _remaining = backend.lookup_entry("none")
        assert value is (None if self.stores_values else NO_VALUE)

    # -- key tracking ---------------------------------------------------------------------

    def test_clear_tracked_deletes_exactly_the_group(self, backend: Backend) -> None:
        for i in range(3):
            assert backend.set_tracked(f"f:{i}", i, None, "module.f") is True
        backend.set_tracked("g:0", "g", None, "module.g")
        backend.set("untracked", "u")
        assert backend.clear_tracked("module.f") == (3 if self.stores_values else 0)
        assert backend.get_many("f:0", "f:1", "f:2") == [None, None, None]
        assert backend.get("g:0") == self.hit("g")
        assert backend.get("untracked") == self.hit("u")
        assert backend.clear_tracked("module.f") == 0

    def test_clear_tracked_skips_deleted_keys(self, backend: Backend) -> None:
        backend.set_tracked("a", 1, None, "grp")
        backend.set_tracked("b", 2, None, "grp")
        backend.delete("a")
        assert backend.clear_tracked("grp") == (1 if self.stores_values else 0)

    def test_delete_tracked_deletes_the_key_and_its_record(self, backend: Backend) -> None:
        backend.set_tracked("a", 1, None, "grp")
        backend.set_tracked("b", 2, None, "grp")
        assert backend.delete_tracked("a", "grp") is self.stores_values
        assert backend.get("a") is None
        assert backend.delete_tracked("a", "grp") is False
        assert backend.clear_tracked("grp") == (1 if self.stores_values else 0)
        assert backend.get("b") is None

    # -- tags (keys in their function's hash tag, as the decorator builds them) ------------

    def test_invalidate_tag_removes_every_entry_carrying_it(self, backend: Backend) -> None:
        backend.set_tagged("{m.f}(1,)", 1, None, "m.f", ("user:1",))
        backend.set_tagged("{m.f}(2,)", 2, None, "m.f", ("user:2",))
        backend.set_tagged("{m.g}(1,)", "g", None, "m.g", ("user:1", "team:7"))
        backend.set("{m.h}(1,)", "plain")
        assert backend.invalidate_tag("user:1") == (2 if self.stores_values else 0)
        assert backend.get_many("{m.f}(1,)", "{m.g}(1,)") == [None, None]
        assert backend.get("{m.f}(2,)") == self.hit(2)
        assert backend.get("{m.h}(1,)") == self.hit("plain")
        assert backend.invalidate_tag("user:1") == 0
        assert backend.invalidate_tag("team:7") == 0, "its entry went with user:1"

    def test_tagged_entries_are_tracked_in_their_group(self, backend: Backend) -> None:
        assert backend.set_tagged("{m.f}(1,)", 1, None, "m.f", ("t",)) is True
        assert backend.clear_tracked("m.f") == (1 if self.stores_values else 0)
        assert backend.invalidate_tag("t") == 0

    # -- concurrency ----------------------------------------------------------------------

    def test_threads_hammering(self, backend: Backend) -> None:
        errors: list[BaseException] = []
        barrier = threading.Barrier(16)

        def worker(n: int) -> None:
            try:
                barrier.wait()
                for i in range(150):
                    key = f"k{(n + i) % 20}"
                    backend.set(key, {"writer": n, "i": i})
                    value = backend.get(key)
                    assert value is None or set(value) == {"writer", "i"}
                    if i % 7 == 0:
                        backend.delete(key)
                    backend.inc("shared-counter")
            except BaseException as exc:  # reported to the main thread below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors[:3]
        assert not any(t.is_alive() for t in threads)

    # -- monitoring -----------------------------------------------------------------------

    def test_counts_nothing_on_healthy_operations(self, backend: Backend) -> None:
        backend.set("key", "value")
        backend.get("key")
        backend.lookup("absent")
        backend.delete("key")
        assert isinstance(backend.stats, BackendStats)
        assert (backend.stats.errors, backend.stats.deserialization_failures) == (0, 0)
        assert backend.stats.lock_waits == 0

    def test_ping_describe_and_store_stats(self, backend: Backend) -> None:
        backend.set("key", "value")
        backend.ping()
        described = backend.describe()
        assert described["backend"] == type(backend).__name__
        assert isinstance(described.get("clears"), str)
        assert json.loads(json.dumps(described)) == described
        stats = backend.store_stats()
        assert json.loads(json.dumps(stats)) == stats
