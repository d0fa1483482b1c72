"""stratacache's first-party backends.

Each is declared in the ``stratacache.backends`` entry-point group by stratacache's
``pyproject.toml``, exactly as a third-party backend would be; the core never imports this
package by name.
"""
