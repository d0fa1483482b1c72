"""FileSystemCache: entries as files in a directory, shared by every process of the machine.

Each key is one file named after the hash of the (prefixed) key, so no key can reach outside
the directory. A file holds a 16-byte header (magic bytes, format version, expiry as a
float64 UNIX time, 0.0 = never) followed by the serializer's bytes. Files are written to a
temporary file first and moved into place, so a reader sees the old entry or the new one,
never a mix.

Modules: ``entry`` (the files: names, header, index lines), ``reading`` (the lookups),
``pruning`` (the shared entry count and the prune past the threshold), ``options`` (the
options model) and ``cache`` (FileSystemCache). Everything public is exported here:
``stratacache_plugins.filesystem:FileSystemCache`` is the entry point.
"""

from stratacache_plugins.filesystem.cache import FileSystemCache
from stratacache_plugins.filesystem.options import FileSystemCacheOptions

__all__ = ["FileSystemCache", "FileSystemCacheOptions"]
