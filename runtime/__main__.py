"""``python -m runtime``: the ``dobox`` command line."""

from ._cli import main

main()
