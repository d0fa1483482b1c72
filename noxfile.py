"""The suites that run on the other Pythons we support (3.12, 3.13), one nox session each.

``make test`` runs the whole suite on 3.11, then ``make pythons`` runs these sessions: the
conformance, decorator, settings and asyncio suites, each in a fresh virtual environment of
that interpreter with the package installed from this checkout. An interpreter that cannot
be found is an error, never a skipped session (``--error-on-missing-interpreters``).
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|venv"  # uv installs in seconds; venv without it
nox.options.error_on_missing_interpreters = True

SUITES = [
    "tests/test_conformance.py",
    "tests/test_decorator.py",
    "tests/test_settings.py",
    "tests/test_async.py",
]


@nox.session(python=["3.12", "3.13"])
def suites(session: nox.Session) -> None:
    """Run the conformance, decorator, settings and asyncio suites on this interpreter."""
    session.install(
        "-e", ".[redis,testing]", "hypothesis>=6.100", "trustme>=1.1", "pytest-asyncio>=0.24"
    )
    session.run("python", "-m", "pytest", *SUITES, "-q", "-p", "no:cacheprovider")
