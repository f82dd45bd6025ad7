"""dobox's public testing toolkit (what ``trio.testing`` is to trio): a runtime on a test's
directory with levers to restart it, crash, evict and inspect objects, fire alarms and
inject commit failures, and a pytest plugin with fixtures."""

from ._etcd import EtcdProcess as EtcdProcess
from ._etcd import open_etcd as open_etcd
from ._server import ServerProcess as ServerProcess
from ._server import open_server_process as open_server_process
from ._test_runtime import TestRuntime as TestRuntime
from ._test_runtime import open_test_runtime as open_test_runtime

__all__ = [
    "EtcdProcess",
    "ServerProcess",
    "TestRuntime",
    "open_etcd",
    "open_server_process",
    "open_test_runtime",
]
