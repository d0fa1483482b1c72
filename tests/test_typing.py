"""Type checkers see a decorated function's own signature (ParamSpec), via mypy --strict.

The same for Flask's ``cache.memoize()``, which is ``cached_for`` underneath.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

from .conftest import ROOT

SNIPPET = """\
from typing import assert_type

from stratacache import cached_for


@cached_for(minutes=1)
def rates(currency: str, *, precise: bool = False) -> dict[str, float]:
    return {}


class Repository:
    @cached_for(minutes=1)
    def count(self, kind: str) -> int:
        return 0


assert_type(rates("EUR"), dict[str, float])
assert_type(rates.uncached("EUR"), dict[str, float])
assert_type(rates.invalidate("EUR", precise=True), bool)
assert_type(rates.clear_cache(), int)
assert_type(rates.cache_key("EUR"), str)
assert_type(Repository().count("users"), int)
assert_type(Repository().count.clear_cache(), int)
rates(42)
rates("EUR", precise="yes")


@cached_for(minutes=1)
async def fetch(currency: str) -> dict[str, float]:
    return {}


async def use() -> None:
    assert_type(await fetch("EUR"), dict[str, float])
    assert_type(await fetch.invalidate("EUR"), bool)
    assert_type(await fetch.clear_cache(), int)
    assert_type(fetch.cache_key("EUR"), str)
    assert_type(await fetch.uncached("EUR"), dict[str, float])
    await fetch(42)


from stratacache.flask import Cache  # noqa: E402

cache = Cache()


@cache.memoize(60)
async def total(currency: str) -> float:
    return 0.0


async def use_memoized() -> None:
    assert_type(await total("EUR"), float)
    assert_type(await total.invalidate("EUR"), bool)
    assert_type(await total.clear_cache(), int)
"""


@pytest.mark.subprocess
def test_decorated_signatures_reach_the_type_checker(tmp_path: Path) -> None:
    source = tmp_path / "snippet.py"
    source.write_text(SNIPPET)
    stdout, _, _ = api.run(
        [
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "--config-file",
            str(ROOT / "pyproject.toml"),
            str(source),
        ]
    )
    errors = [line.split(": error: ")[0].rsplit(":", 1)[-1] for line in stdout.splitlines()]
    assert errors == ["24", "25", "39"], stdout
    assert 'incompatible type "int"; expected "str"' in stdout
    assert 'incompatible type "str"; expected "bool"' in stdout
