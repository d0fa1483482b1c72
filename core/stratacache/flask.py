"""The seed's import path of the Flask integration, which lives in a plugin.

``from stratacache.flask import Cache`` keeps working; the code is
:mod:`stratacache_plugins.flask` (core holds no Flask code).
"""

from stratacache_plugins.flask import *  # noqa: F403 (this module is the plugin's other name)
from stratacache_plugins.flask import __all__  # noqa: F401 (re-exported)
