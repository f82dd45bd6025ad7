"""Hosting Durable Objects: ``open_runtime``, namespaces and stubs, the coordinator, and the
``dobox`` command line."""

from ._coordinator import Coordinator as Coordinator
from ._coordinator import Lease as Lease
from ._coordinator import SingleProcessCoordinator as SingleProcessCoordinator
from ._namespace import Call as Call
from ._namespace import Namespace as Namespace
from ._namespace import Stub as Stub
from ._runtime import Runtime as Runtime
from ._runtime import RuntimeStatistics as RuntimeStatistics
from ._runtime import open_runtime as open_runtime

__all__ = [
    "Call",
    "Coordinator",
    "Lease",
    "Namespace",
    "Runtime",
    "RuntimeStatistics",
    "SingleProcessCoordinator",
    "Stub",
    "open_runtime",
]
