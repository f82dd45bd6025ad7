"""``python -m dobox``: the ``dobox`` command line."""

from runtime.cli import main

main()
