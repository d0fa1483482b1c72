"""A backend module whose driver is not installed (for the registry's error message)."""

import no_such_driver  # type: ignore[import-not-found]  # noqa: F401
