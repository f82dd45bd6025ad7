"""The engine's low-level face, for test harnesses and tools (as ``trio.lowlevel`` is for
trio): ``RuntimeControls`` (``rt.lowlevel``), the ``EventSink`` a ``Namespace`` sends its
stubs' events to, and the ``Event`` it sends. Applications do not need it."""

from ._engine import Event as Event
from ._engine import EventSink as EventSink
from ._engine import RuntimeControls as RuntimeControls
from ._engine import check_namespace_class as check_namespace_class

__all__ = ["Event", "EventSink", "RuntimeControls"]
