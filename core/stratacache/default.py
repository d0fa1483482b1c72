"""The process-wide stack, :data:`stratacache.cache`, in a module of its own.

The decorator and the integrations import it from here, so that no module of the package
imports the package's facade (``stratacache/__init__.py``), which imports them.
"""

from stratacache.stack import CacheStack

__all__ = ["cache"]

cache = CacheStack()
"""The process-wide stack: ``cache.tiers``, ``cache.local_cache``, ``cache.shared_cache``..."""
