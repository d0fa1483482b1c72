"""``python -m stratacache``: the operator CLI."""

from stratacache.cli import main

main(prog_name="stratacache")
