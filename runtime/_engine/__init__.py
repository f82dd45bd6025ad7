"""The engine: runtimes, namespaces and stubs, the router, actors and their gates, the
coordinator, alarms and the registry of hibernatable WebSockets.

Private, as trio's ``_core`` is: ``runtime`` re-exports the public names, and the server,
the command line and the harness import what they use from here, never from the modules
inside.
"""

from ._alarms import ALARM_INDEX_NAME as ALARM_INDEX_NAME
from ._alarms import earliest_alarm as earliest_alarm
from ._commit_placement import polling as polling
from ._coordinator import Coordinator as Coordinator
from ._coordinator import Lease as Lease
from ._coordinator import SingleProcessCoordinator as SingleProcessCoordinator
from ._descriptors import raise_open_file_limit as raise_open_file_limit
from ._event import Event as Event
from ._inspection import NOT_HELD as NOT_HELD
from ._inspection import LiveObject as LiveObject
from ._inspection import NotHeld as NotHeld
from ._inspection import ObjectBusyError as ObjectBusyError
from ._inspection import SocketView as SocketView
from ._lowlevel import EventSink as EventSink
from ._lowlevel import RuntimeControls as RuntimeControls
from ._memory import MemoryRelease as MemoryRelease
from ._namespace import Call as Call
from ._namespace import Namespace as Namespace
from ._namespace import Stub as Stub
from ._namespace import check_namespace_class as check_namespace_class
from ._options import RuntimeOptions as RuntimeOptions
from ._options import RuntimeSettings as RuntimeSettings
from ._runtime import Runtime as Runtime
from ._runtime import check_objects as check_objects
from ._runtime import open_runtime as open_runtime
from ._statistics import RuntimeStatistics as RuntimeStatistics
