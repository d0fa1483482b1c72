"""DictCache keeps stratacache's backend contract: run ``pytest`` in this directory.

Install the package first (``pip install -e '.[testing]'``): the tests then use it the way
stratacache does, through its entry point.
"""

from __future__ import annotations

import pytest
import stratacache
from stratacache.testing import BackendConformance, BackendFactory

from stratacache_dictcache import DictCache


class TestDictCache(BackendConformance):
    """Every test of stratacache's conformance suite, each on a fresh DictCache."""

    @pytest.fixture
    def make_backend(self) -> BackendFactory:
        # A factory of fresh, empty backends; the suite passes the options a test needs
        # (default_timeout, serializer...). A backend needing a server or a directory builds
        # it here, from fixtures such as tmp_path.
        return DictCache


def test_selected_by_its_entry_point_name() -> None:
    assert "DictCache" in {backend.name for backend in stratacache.installed_backends()}
    assert stratacache.load_backend("DictCache") is DictCache


def test_serves_as_the_shared_layer() -> None:
    stack = stratacache.CacheStack()
    stack.configure({"CACHE_TYPE": "DictCache"})
    calls = []

    @stratacache.cached_for(minutes=1, stack=stack)
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    assert [square(7), square(7)] == [49, 49]
    stack.local_cache.cache.clear()  # as in another process: the shared layer must answer
    assert square(7) == 49
    assert calls == [7]
    assert isinstance(stack.shared_cache.cache, DictCache)


def test_payloads_are_signed_with_the_secret_key() -> None:
    stack = stratacache.CacheStack()
    stack.configure({"CACHE_TYPE": "DictCache", "CACHE_SECRET_KEY": "a-secret-of-16-bytes-or-more"})
    backend = stack.shared_cache.cache
    assert backend.signer is not None  # the layer stack passed secret_key through **options

    backend.set("k", {"v": 1})
    assert backend.get("k") == {"v": 1}
    forged = DictCache(secret_key="another-secret-of-16-bytes").dump_value("k", {"v": 666})
    with pytest.raises(stratacache.DeserializationError):  # what lookup() turns into a miss
        backend.load_value("k", forged)
