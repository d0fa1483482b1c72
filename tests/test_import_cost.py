"""``import stratacache`` is cheap: the settings machinery loads at the first configure.

pydantic and pydantic-settings cost about 0.3 s to import, which every CLI call and every
process that only decorates would pay. Each check runs in a fresh interpreter, since this
one has imported everything long ago.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pydantic", "pydantic_settings", "pydantic_core")

REPORT = """
import json, sys
{code}
print(json.dumps(sorted(m for m in sys.modules if m.partition(".")[0] in {heavy!r})))
"""


def loaded_after(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; return the heavy modules it left imported."""
    env = {
        k: v for k, v in os.environ.items() if not k.upper().startswith(("CACHE_", "LOCALCACHE_"))
    }
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "core"), str(ROOT / "plugins")])
    result = subprocess.run(
        [sys.executable, "-c", REPORT.format(code=code, heavy=HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return loaded


@pytest.mark.parametrize(
    "code",
    [
        "import stratacache",
        "from stratacache import cached_for",
        "from stratacache import cached_for\n@cached_for(minutes=5)\ndef f(x): return x",
        "import stratacache.cli",
    ],
    ids=["import", "from-import", "decorate", "cli-module"],
)
def test_importing_and_decorating_do_not_load_the_settings_machinery(code: str) -> None:
    assert loaded_after(code) == []


def test_the_first_configure_loads_it() -> None:
    assert "pydantic_settings" in loaded_after("import stratacache\nstratacache.configure()")


@pytest.mark.parametrize("name", ["CacheSettings", "BackendOptions", "option"])
def test_the_lazy_names_stay_public(name: str) -> None:
    import stratacache
    from stratacache import options, settings

    expected = {
        "CacheSettings": settings.CacheSettings,
        "BackendOptions": options.BackendOptions,
        "option": options.option,
    }[name]
    assert getattr(stratacache, name) is expected
    assert name in stratacache.__all__
    assert name in dir(stratacache)


def test_an_unknown_name_is_an_attribute_error() -> None:
    import stratacache

    with pytest.raises(AttributeError, match="has no attribute 'CacheSetings'"):
        stratacache.CacheSetings  # noqa: B018
