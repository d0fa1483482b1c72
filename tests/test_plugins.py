"""Hook plugins: discovery, validation, operation hooks and serializer registration."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from stratacache import (
    CacheStack,
    ConfigurationError,
    PluginError,
    cached_for,
    hookimpl,
    plugin_manager,
)
from stratacache.pluginmanager import load_plugins, serializers


def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> None:
    """Install a real distribution (dist-info + module) declaring a stratacache plugin."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / f"{name}.py").write_text(textwrap.dedent(source))
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[stratacache.plugins]\n{name} = {name}\n")
    monkeypatch.syspath_prepend(str(site))


def test_entry_point_plugin_with_unknown_hook_fails_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None
) -> None:
    install_plugin(
        tmp_path,
        monkeypatch,
        "typo_plugin",
        """
        from stratacache import hookimpl

        @hookimpl
        def stratacache_gett(key):
            return None
        """,
    )
    with pytest.raises(PluginError) as info:
        CacheStack().configure({"CACHE_TYPE": "SimpleCache"})
    message = str(info.value)
    assert "plugin 'typo_plugin'" in message
    assert "'stratacache_gett'" in message
    assert "Did you mean 'stratacache_get'?" in message


def test_entry_point_plugin_with_unknown_argument_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None
) -> None:
    install_plugin(
        tmp_path,
        monkeypatch,
        "badarg_plugin",
        """
        from stratacache import hookimpl

        @hookimpl
        def stratacache_get(key, colour):
            return None
        """,
    )
    with pytest.raises(PluginError, match=r"plugin 'badarg_plugin' cannot be loaded.*colour"):
        load_plugins()


def test_plugin_registered_by_hand_is_checked(fresh_plugins: None) -> None:
    class Misspelt:
        @hookimpl
        def stratacache_sett(self) -> None:
            """Not a hook."""

    plugin_manager().register(Misspelt(), name="misspelt")
    with pytest.raises(PluginError, match="plugin 'misspelt' implements hook 'stratacache_sett'"):
        load_plugins()


@pytest.fixture
def register_by_hand(fresh_plugins: None) -> Iterator[Callable[[object, str], None]]:
    """Register plugins on the manager by hand; they are unregistered when the test ends."""
    registered: list[str] = []

    def register(plugin: object, name: str) -> None:
        plugin_manager().register(plugin, name=name)
        registered.append(name)

    try:
        yield register
    finally:
        for name in registered:
            plugin_manager().unregister(name=name)


class TwoVersions:
    """Supports two stratacache versions: one hook of this one, one of another."""

    @hookimpl
    def stratacache_register_serializers(self, register: Any) -> None:
        """A hook this stratacache defines."""

    @hookimpl(optionalhook=True)
    def stratacache_from_another_version(self) -> None:
        """A hook this stratacache does not define; marked optional, it is not an error."""


def test_optional_hook_without_spec_is_accepted(
    register_by_hand: Callable[[object, str], None],
) -> None:
    register_by_hand(TwoVersions(), "two_versions")
    manager = load_plugins()
    assert manager.has_plugin("two_versions")
    manager.check_pending()  # pluggy agrees
    assert set(serializers()) == {"pickle", "json"}


def test_unmarked_hook_without_spec_beside_an_optional_one_still_fails(
    register_by_hand: Callable[[object, str], None],
) -> None:
    class HalfMarked(TwoVersions):
        @hookimpl
        def stratacache_gett(self) -> None:
            """Misspelt and unmarked."""

    register_by_hand(HalfMarked(), "half_marked")
    with pytest.raises(PluginError) as info:
        load_plugins()
    message = str(info.value)
    assert "plugin 'half_marked' implements hook 'stratacache_gett'" in message
    assert "Did you mean 'stratacache_get'?" in message
    assert "stratacache_from_another_version" not in message
    assert "@hookimpl(optionalhook=True)" in message


def test_no_plugin_means_no_hook_call_on_the_hot_path(fresh_plugins: None) -> None:
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "SimpleCache"})
    local = stack.local_cache
    # The tier's read is the backend's own (compiled) lookup, no pluggy call, and so is
    # the first-tier read of a decorated function's route.
    assert local.fast_lookup is local.cache.compiled_lookup()
    assert not local.hooked
    assert local.cache.serializer is not None
    assert type(local.cache.serializer).__name__ == "PickleSerializer"


class Recorder:
    """Observes every operation with wrappers, as a metrics plugin would."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []

    @hookimpl(wrapper=True)
    def stratacache_get(self, layer: str, key: str) -> Generator[None, Any, Any]:
        result = yield
        self.events.append(
            ("get", layer, "miss" if result is None or repr(result) == "NO_VALUE" else "hit")
        )
        return result

    @hookimpl(wrapper=True)
    def stratacache_set(self, layer: str, key: str) -> Generator[None, Any, Any]:
        result = yield
        self.events.append(("set", layer, result))
        return result

    @hookimpl(wrapper=True)
    def stratacache_delete(self, layer: str, key: str) -> Generator[None, Any, Any]:
        result = yield
        self.events.append(("delete", layer, result))
        return result


def test_operation_hooks_observe_the_decorator(fresh_plugins: None) -> None:
    recorder = Recorder()
    plugin_manager().register(recorder)
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "SimpleCache"})

    @cached_for(minutes=1, stack=stack)
    def f(x: int) -> int:
        return x

    f(1)
    f(1)
    f.invalidate(1)
    assert recorder.events == [
        ("get", "local", "miss"),
        ("get", "shared", "miss"),
        ("set", "shared", True),
        ("set", "local", True),
        ("get", "local", "hit"),
        ("delete", "local", True),
        ("delete", "local_no_serializer", False),
        ("delete", "shared", True),
    ]


class XorEncryption:
    """Transforms stored bytes, as an encryption plugin would."""

    @staticmethod
    def _xor(data: bytes) -> bytes:
        return bytes(b ^ 0x5A for b in data)

    @hookimpl(wrapper=True)
    def stratacache_serialize(self, layer: str) -> Generator[None, bytes, bytes]:
        data = yield
        return self._xor(data) if layer == "shared" else data

    @hookimpl(tryfirst=True)
    def stratacache_deserialize(self, layer: str, serializer: Any, data: bytes) -> Any:
        return serializer.loads(self._xor(data)) if layer == "shared" else None


def test_serialize_hooks_transform_stored_bytes(fresh_plugins: None, tmp_path: Path) -> None:
    plugin_manager().register(XorEncryption())
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(tmp_path / "c")})
    stack.set("secret", {"card": "4242"})
    raw = b"".join(p.read_bytes() for p in (tmp_path / "c").iterdir() if p.is_file())
    assert b"4242" not in raw
    stack.local_cache.cache.clear()
    assert stack.get("secret") == {"card": "4242"}


class Upper:
    def dumps(self, value: Any) -> bytes:
        return str(value).upper().encode()

    def loads(self, data: bytes) -> Any:
        return data.decode()


class UpperPlugin:
    @hookimpl
    def stratacache_register_serializers(self, register: Any) -> None:
        register("upper", Upper())


def test_plugin_serializer_is_selectable(fresh_plugins: None) -> None:
    plugin_manager().register(UpperPlugin())
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "SimpleCache", "CACHE_SERIALIZER": "upper"})
    stack.shared_cache.cache.set("k", "quiet")
    assert stack.shared_cache.cache.get("k") == "QUIET"
    assert set(serializers()) == {"pickle", "json", "upper"}


def test_duplicate_serializer_name_is_refused(fresh_plugins: None) -> None:
    class Duplicate:
        @hookimpl
        def stratacache_register_serializers(self, register: Any) -> None:
            register("json", Upper())

    plugin_manager().register(Duplicate())
    with pytest.raises(PluginError, match="serializer 'json' is registered twice"):
        serializers()


def test_serializer_without_loads_is_refused(fresh_plugins: None) -> None:
    class Broken:
        @hookimpl
        def stratacache_register_serializers(self, register: Any) -> None:
            register("half", object())

    plugin_manager().register(Broken())
    with pytest.raises(PluginError, match="lacks dumps\\(\\) or loads\\(\\)"):
        serializers()


def test_unknown_serializer_is_a_configuration_error(fresh_plugins: None) -> None:
    with pytest.raises(ConfigurationError, match="CACHE_SERIALIZER='yaml'"):
        CacheStack().configure({"CACHE_SERIALIZER": "yaml"})


def test_configured_hook_sees_every_configuration(fresh_plugins: None) -> None:
    seen: list[tuple[CacheStack, str]] = []

    class Watcher:
        @hookimpl
        def stratacache_configured(self, stack: CacheStack, settings: Any) -> None:
            seen.append((stack, settings.cache_type))

    plugin_manager().register(Watcher())
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "SimpleCache"})
    stack.configure({"CACHE_TYPE": "NullCache"})
    lazy = CacheStack()
    assert lazy.get("k") is None  # the first use configures from the environment
    assert seen == [(stack, "SimpleCache"), (stack, "NullCache"), (lazy, "NullCache")]
