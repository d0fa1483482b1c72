"""`make compat`: the peers' own test suites run against stratacache (not part of the package)."""
