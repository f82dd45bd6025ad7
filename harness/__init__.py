"""Placeholder: this package is built by a later issue (see docs/)."""

__all__: list[str] = []
