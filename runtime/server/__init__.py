"""The HTTP and WebSocket server: the ASGI app (``DoboxApp``) that ``dobox serve`` runs
under uvicorn with the engine as trio's guest, and ``serve`` for trio programs
(hypercorn). Routes, tenants and tokens: docs/serving.md."""

from ._asgi import DoboxApp as DoboxApp
from ._cluster import ClusterSettings as ClusterSettings
from ._guest import DEFAULT_BUSY_POLL as DEFAULT_BUSY_POLL
from ._serve import serve as serve

__all__ = ["DEFAULT_BUSY_POLL", "ClusterSettings", "DoboxApp", "serve"]
