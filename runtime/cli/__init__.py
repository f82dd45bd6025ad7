"""The ``dobox`` command line (``demo``, ``serve``, ``ls``, ``inspect``, ``sql``, ``backup``,
``restore``) and the operations tools behind it, which read object files the way storage
writes them without opening them as an object."""

from ._commands import main as main

__all__ = ["main"]
