"""Hosting of Durable Objects: the runtime, and the ``dobox`` command line."""

__all__: list[str] = []
