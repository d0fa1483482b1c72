"""The settings of ``.env`` in this directory, as a Flask config file.

Load it as Flask loads any config file, then hand the application to stratacache::

    app.config.from_pyfile("flask_config.py")
    stratacache.flask.init_app(app)

Only the ``CACHE_*`` and ``LOCALCACHE_*`` keys are stratacache's; Flask's own keys live in
the same file and are ignored by it. Values keep their Python types here, where ``.env``
spells them as text (numbers) or JSON (``CACHE_OPTIONS``, ``CACHE_SECRET_KEY``).
"""

# -- the shared layer: Redis, seen by every instance ---------------------------------------
CACHE_TYPE = "RedisCacheNoExceptions"
CACHE_REDIS_URL = "redis://cache.internal:6379/0"
CACHE_REDIS_CONNECT_TIMEOUT = 0.25
CACHE_REDIS_READ_TIMEOUT = 0.5
CACHE_KEY_PREFIX = "billing:"
CACHE_DEFAULT_TIMEOUT = 600
CACHE_OPTIONS = {"health_check_interval": 30}
# Placeholders: in production, read the secret from a secret store.
CACHE_SECRET_KEY = [
    "replace-with-a-long-random-secret-0001",
    "the-previous-secret-verifies-0000",
]

# -- the local layer of each process -------------------------------------------------------
LOCALCACHE_TYPE = "SimpleCache"
LOCALCACHE_DEFAULT_TIMEOUT = 30
LOCALCACHE_THRESHOLD = 2000

# -- Flask's own settings (not stratacache's) -----------------------------------------------
MAX_CONTENT_LENGTH = 16 * 1024 * 1024
