"""``python -m runtime``: the ``dobox`` command line."""

from runtime.cli import main

main()
