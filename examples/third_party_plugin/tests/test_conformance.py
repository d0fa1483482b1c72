"""DictCache runs stratacache's backend conformance suite.

Named ``check_*`` so that the enclosing stratacache test run does not collect it; run it
explicitly: ``python -m pytest tests/check_dictcache.py``.
"""

from __future__ import annotations

import pytest
from stratacache_dictcache import DictCache

from stratacache.testing import BackendConformance, BackendFactory


class TestDictCache(BackendConformance):
    @pytest.fixture
    def make_backend(self) -> BackendFactory:
        return DictCache
