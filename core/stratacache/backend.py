"""The backend contract: :class:`Backend`, the base class every cache backend derives from.

A backend is cachelib's :class:`cachelib.BaseCache` interface (``get``, ``set``, ``add``,
``delete``, ``get_many``, ``set_many``, ``delete_many``, ``get_dict``, ``has``, ``clear``,
``inc``, ``dec``) with cachelib's semantics, plus what the layer stack needs and cachelib
lacks:

* :meth:`Backend.lookup`, a read that tells a miss (:data:`NO_VALUE`) from a stored ``None``
  in one operation, and :meth:`Backend.lookup_entry`, the same read with the entry's
  remaining lifetime, which the engine needs to fill the tiers above without stretching
  the entry's life;
* :meth:`Backend.set_tracked`, :meth:`Backend.delete_tracked` and
  :meth:`Backend.clear_tracked`, per-function key tracking so ``f.clear_cache()`` deletes
  exactly one function's entries without scanning the store, and ``f.invalidate()`` removes
  an entry with its record;
* :meth:`Backend.set_tagged` and :meth:`Backend.invalidate_tag`, the entries of every
  function carrying a tag (see :mod:`stratacache.tagging`);
* :attr:`Backend.options_model`, the pydantic model of the options the backend owns (its
  configuration keys, types, bounds and secrets; see :mod:`stratacache.options`), and
  :meth:`Backend.from_options`, how the assembly step builds the backend from them;
* :attr:`Backend.stats`, a :class:`~stratacache.BackendStats` the backend increments for the
  events only it sees: ``errors`` (an operation failed and the backend handled or reported
  it), ``deserialization_failures`` (an entry could not be read back) and ``lock_waits``
  (a wait for another process's lock). Write ``self.stats.errors += 1`` at the point of the
  event, every time through ``self.stats``: the layer stack replaces the object with its
  layer's counters, which :meth:`CacheStack.stats() <stratacache.CacheStack.stats>` reports;
* :attr:`Backend.api` and the ``a``-methods (``alookup``, ``aset_tracked``...), how it
  serves ``async def`` code (see :mod:`stratacache.asyncbackend`);
* :meth:`Backend.ping`, :meth:`Backend.describe` and :meth:`Backend.store_stats`, what the
  operator CLI (``stratacache ping``, ``info``, ``stats``) reports; each raises when the store
  cannot answer, even in a backend that otherwise degrades silently.

The contract is documented here, once; a backend's own docstring says only its options and
where it deviates.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Self

from cachelib import BaseCache

from stratacache.asyncbackend import AsyncMethods
from stratacache.computation import NO_VALUE, Computation, NoValue, Timeout
from stratacache.errors import key_type_error
from stratacache.forksafe import renew_in_child
from stratacache.inspection import Inspectable
from stratacache.serializers import PickleSerializer, Serializer, SerializerAttribute
from stratacache.signing import Signer
from stratacache.stats import BackendStats
from stratacache.tagging import TagMethods

if TYPE_CHECKING:
    from stratacache.options import BackendOptions

__all__ = ["NO_VALUE", "Backend", "Computation", "NoValue", "Timeout", "key_type_error"]


_GROUP_INDEX_PREFIX = "__stratacache_group__:"
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class Backend(AsyncMethods, TagMethods, Inspectable, BaseCache):
    """Base class of every stratacache backend (see the module docstring for the contract).

    Subclasses implement at least ``get``, ``set``, ``delete``, ``has`` and ``clear`` with
    cachelib's semantics, and should override :meth:`lookup` with a single-operation read.
    The defaults of :meth:`set_tracked` and :meth:`clear_tracked` keep a group's keys in an
    index entry of the backend itself; a backend with a better structure (a Redis set, an
    in-memory map) overrides them.

    Backends that keep bytes outside the process (Redis, files) accept ``secret_key`` and go
    through :meth:`dump_value` and :meth:`load_value`, which sign and verify payloads when a
    key is set (see :mod:`stratacache.signing`); in-process backends need no signature.

    Args:
        default_timeout: Seconds an entry lives when ``set`` gets no timeout; 0 = forever.
        serializer: How values become bytes, for backends that store bytes (default pickle).
        secret_key: A secret, or several (newest first, for rotation), to sign every stored
            payload with; ``None`` stores payloads unsigned.
    """

    in_process: ClassVar[bool] = False
    """True when entries live in this process's memory, so the backend may be a local layer."""

    coordinates_processes: ClassVar[bool] = False
    """True when :meth:`start_computation` coordinates ``atomic_writes`` across processes."""

    serializes: ClassVar[bool] = True
    """False when values are stored by reference (no copy); only such a backend may be the
    ``local_cache_no_serializer`` layer."""

    stores: ClassVar[bool] = True
    """False for a backend that keeps nothing (NullCache): the engine then does not read the
    remaining lifetime of an entry found below it, since it will not copy it there."""

    degrades: ClassVar[bool] = False
    """True when a failed operation returns a fallback and counts in ``stats.errors`` instead
    of raising: its tier then replays the invalidations it missed (:mod:`stratacache.recovery`)."""

    options_model: ClassVar[type[BackendOptions] | None] = None
    """The options this backend owns (see :mod:`stratacache.options`), or ``None``.

    Each field is a constructor argument; its key (``option(key="REDIS_PORT")``) is read as
    ``CACHE_REDIS_PORT`` for the shared tier and ``LOCALCACHE_...`` for a local one, and a
    ``CACHE_LAYERS`` tier spec names it by field name. A backend without a model gets only
    the generic options (``default_timeout``, ``key_prefix``, ``serializer``,
    ``secret_key``) its constructor names, and ``CACHE_OPTIONS`` for the shared tier.
    """

    serializer = SerializerAttribute()
    """``serializer=``, else the class's (a subclass's ``serializer = S()``), else pickle."""

    serializer_stream: ClassVar[bool] = False
    """True to use a cachelib serializer's ``dump``/``load`` (as cachelib's FileSystemCache)."""

    _declared_serializer: ClassVar[Any] = PickleSerializer()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Take a subclass's ``serializer = ...`` class attribute as its serializer."""
        super().__init_subclass__(**kwargs)
        declared = cls.__dict__.get("serializer")
        if declared is not None and not isinstance(declared, SerializerAttribute):
            cls._declared_serializer = declared
            delattr(cls, "serializer")  # Backend's attribute serves it, and assignments

    @classmethod
    def declared_serializer(cls) -> Any:
        """Return the serializer a subclass declares as a class attribute, else ``None``."""
        declared = cls._declared_serializer
        return None if declared is Backend._declared_serializer else declared

    def __init__(
        self,
        default_timeout: int | timedelta = 300,
        *,
        serializer: Serializer | None = None,
        secret_key: str | bytes | Iterable[str | bytes] | None = None,
        ignore_delete_many_errors: bool = True,
    ) -> None:
        self.stats: BackendStats = BackendStats()
        """The backend's own counters (see :class:`~stratacache.BackendStats`)."""
        super().__init__(
            self._to_seconds(default_timeout),
            ignore_delete_many_errors=ignore_delete_many_errors,
        )
        if self.default_timeout < 0:
            raise ValueError(
                f"default_timeout must be >= 0 seconds (0 = never expire), got {default_timeout!r}"
            )
        self._codec: Serializer
        self.serializer = serializer if serializer is not None else type(self)._declared_serializer
        if isinstance(secret_key, str | bytes):
            secret_key = [secret_key]
        self.signer: Signer | None = Signer(secret_key) if secret_key else None
        """Signs and verifies stored payloads; ``None`` when no secret key is set."""
        self._tracking_lock = threading.Lock()
        renew_in_child(self, "_tracking_lock")

    # -- payloads -------------------------------------------------------------------------

    def dump_value(self, key: str, value: Any) -> bytes:
        """Return the bytes to store for ``value`` under ``key``: serialized, then signed.

        Pass the full name the bytes are stored under, the backend's own prefix included, so
        that a signed entry copied under another prefix (another application or tenant
        sharing the store and the secret) does not verify.

        Raises:
            SerializationError: The serializer cannot turn ``value`` into bytes.
        """
        data = self._codec.dumps(value)
        signer = self.signer
        return data if signer is None else signer.sign(key, data)

    def load_value(self, key: str, data: bytes) -> Any:
        """Return the value held in ``data``, stored under ``key``: verified, then deserialized.

        With a secret key, the serializer never sees bytes whose signature does not check out.
        ``key`` is the full stored name, as given to :meth:`dump_value`.

        Raises:
            DeserializationError: The bytes cannot be read back; its subclass
                :class:`~stratacache.signing.SignatureError` when the signature is missing or
                wrong.
        """
        signer = self.signer
        return self._codec.loads(data if signer is None else signer.verify(key, data))

    # -- construction from settings -------------------------------------------------------

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, explicit: Mapping[str, Any]) -> Self:
        """Build the backend from the layer stack's options.

        Args:
            options: Generic options the stack derives from the settings for every backend
                (``default_timeout``, ``threshold``, ``key_prefix``, ``cache_dir``,
                ``serializer``, the Redis connection keys...). Those the constructor does not
                accept are left out, so one settings model serves every backend.
            explicit: Options the user named for this backend (``CACHE_OPTIONS``): passed
                as they are, so a misspelt one fails loudly.

        Override it when the settings need translating (a URL built from host and port, say).

        Raises:
            OptionsError: Built with :meth:`OptionsError.refusing
                <stratacache.options.OptionsError.refusing>` by a backend that refuses some
                arguments (here or in its constructor): each problem names its argument,
                and the assembly step names the setting that gave it.
        """
        return cls(**cls.accepted_options(options), **explicit)

    @classmethod
    def accepted_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """Return the ``options`` that the constructor names as parameters.

        Parameters of base classes count where a subclass passes ``**kwargs`` on to them;
        a ``**kwargs`` catch-all itself takes only what the user named in ``CACHE_OPTIONS``.
        """
        named = cls.constructor_arguments()
        return {k: v for k, v in options.items() if k in named}

    @classmethod
    def constructor_arguments(cls) -> frozenset[str]:
        """Return the arguments the constructor names, through its bases' ``**kwargs``."""
        named: set[str] = set()
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            params = inspect.signature(init).parameters.values()
            named.update(p.name for p in params if p.kind not in _VARIADIC)
            if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
                break
        return frozenset(named)

    # -- timeouts -------------------------------------------------------------------------

    def timeout_seconds(self, timeout: Timeout) -> float:
        """Return ``timeout`` in seconds: ``None`` gives the default; 0 means no expiry.

        Floats are kept (cachelib rounds them up and warns); a negative timeout is an entry
        that is already expired, as in cachelib.
        """
        if timeout is None:
            return self.default_timeout
        if isinstance(timeout, timedelta):
            return timeout.total_seconds()
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise TypeError(
                f"timeout must be a number of seconds, a timedelta or None, got {timeout!r}"
            )
        return timeout

    # -- the cachelib interface, with stratacache's timeouts ------------------------------

    def set(self, key: str, value: Any, timeout: Timeout = None) -> bool | None:
        """Store ``value`` under ``key`` (cachelib's semantics; timeouts may be floats).

        This base stores nothing, as cachelib's ``BaseCache`` does; backends override it.
        """
        return super().set(key, value, None)

    # -- reads that tell a miss from None -------------------------------------------------

    def get(self, key: str) -> Any:
        """Return the value of ``key``, or ``None`` on a miss (cachelib's semantics).

        Derived from :meth:`lookup` for backends that override it; a backend overrides
        either this or :meth:`lookup`.
        """
        if type(self).lookup is Backend.lookup:
            return super().get(key)
        value = self.lookup(key)
        return None if value is NO_VALUE else value

    def lookup(self, key: str) -> Any:
        """Return the value stored under ``key``, or :data:`NO_VALUE` on a miss.

        A corrupted entry is a miss (and is removed). This default costs two reads: override.
        """
        if not self.has(key):
            return NO_VALUE
        return self.get(key)

    def compiled_lookup(self) -> Callable[[str], Any]:
        """What the hot path calls as :meth:`lookup` (alike; this default: the method)."""
        return self.lookup

    def lookup_entry(self, key: str) -> tuple[Any, float | None]:
        """Return ``(value, remaining)``: :meth:`lookup` and the entry's remaining lifetime.

        ``remaining`` is in seconds, ``math.inf`` for an entry that never expires, and
        ``None`` when the backend cannot tell (the engine then uses the function's own
        timeout). It must come with the read, in the same round trip, and from the store's
        own clock (Redis: the key's TTL), so that a writer's clock cannot stretch the
        entry's life. On a miss the value is :data:`NO_VALUE` and ``remaining`` is ignored.

        The engine calls it on every tier below the first, whose hits fill the tiers above
        with ``min(remaining, tier cap)``. This default reads with :meth:`lookup` and does
        not know the lifetime.
        """
        return self.lookup(key), None

    # -- per-function key tracking --------------------------------------------------------

    def set_tracked(
        self, key: str, value: Any, timeout: Timeout = None, group: str | None = None
    ) -> bool:
        """Store ``value`` like :meth:`set` and record ``key`` as a member of ``group``.

        The ``cached_for`` decorator writes every entry this way, with the function as the
        group, so that :meth:`clear_tracked` can later delete exactly those keys.
        """
        stored = bool(self.set(key, value, timeout))
        if stored and group is not None:
            self._track(group, key)
        return stored

    def delete_tracked(self, key: str, group: str) -> bool:
        """Delete ``key`` like :meth:`delete` and drop it from ``group``'s record.

        ``f.invalidate()`` deletes this way, with the function as the group, so that
        invalidated entries leave nothing behind in the tracking data. This default calls
        :meth:`delete` and leaves the record as it is: the default record prunes keys that
        are gone as it grows. A backend whose record would otherwise keep dead members (a
        Redis sorted set of entries that never expire) overrides it.
        """
        return bool(self.delete(key))

    def clear_tracked(self, group: str) -> int:
        """Delete every entry recorded in ``group`` and the record; return how many went."""
        return self._clear_index(group)

    def _clear_index(self, group: str) -> int:
        """The default :meth:`clear_tracked`, which the default tag index uses too."""
        with self._tracking_lock:
            members: list[str] = self.get(_GROUP_INDEX_PREFIX + group) or []
            self.delete(_GROUP_INDEX_PREFIX + group)
        return sum(1 for key in members if self.delete(key))

    def _track(self, group: str, key: str) -> None:
        index_key = _GROUP_INDEX_PREFIX + group
        with self._tracking_lock:
            members: list[str] = self.get(index_key) or []
            if key in members:
                return
            members.append(key)
            size = len(members)
            if size >= 64 and size & (size - 1) == 0:  # amortized: prune at each doubling
                members = [k for k in members if self.has(k)]
            self.set(index_key, members, timeout=0)

    # -- coordination across processes (atomic_writes) -------------------------------------

    def start_computation(
        self, key: str, timeout: Timeout, group: str | None, mode: str
    ) -> Computation:
        """Begin computing a missing ``key`` under ``atomic_writes=mode``.

        ``cached_for`` calls it after a miss in every layer, with ``mode`` one of
        ``"at_most_once"`` and ``"at_least_once"``. A backend that coordinates processes may
        wait here (for another process's result) or take a lock. This default coordinates
        nothing; within one process ``cached_for`` already runs the function once per key.
        """
        return Computation(self, key, timeout, group)

    def acquire_refresh(self, key: str) -> str | None:
        """Claim the background refresh of the stale entry ``key`` across processes.

        Functions with ``refresh_after``/``stale_after`` call it on their deepest tier
        before refreshing in the background. Return a lease (given back to
        :meth:`release_refresh` when the refresh is done), or ``None`` when another process
        holds it (then this one does not refresh). Never wait. This default coordinates
        nothing (``""``): each process refreshes a key once at a time on its own. A backend
        that coordinates processes (:attr:`coordinates_processes`) holds its
        ``atomic_writes`` lock for it.
        """
        return ""

    def release_refresh(self, key: str, lease: str) -> None:
        """Give back the refresh of ``key`` claimed by :meth:`acquire_refresh`."""

    # -- resources ------------------------------------------------------------------------

    def close(self) -> None:
        """Release connections or handles; the default has nothing to release.

        Called by ``CacheStack.close()`` and when a reconfiguration replaces the backend,
        possibly while a call started before is still running on it: that call must not
        break, and a later one should still work (say, with a connection of its own).
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(default_timeout={self.default_timeout})"
