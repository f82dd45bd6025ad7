"""Several ``dobox serve`` processes as one: membership and object ownership on etcd
leases, with fencing tokens (work in progress: docs/cluster.md says what is built)."""

from ._errors import NotOwnerError as NotOwnerError
from ._etcd import Etcd as Etcd
from ._etcd import EtcdError as EtcdError
from ._etcd import KeyValue as KeyValue
from ._litestream import Litestream as Litestream
from ._litestream import ReplicationError as ReplicationError
from ._node import ClusterCoordinator as ClusterCoordinator
from ._node import ClusterNode as ClusterNode
from ._node import Member as Member
from ._replicas import ReplicaSettings as ReplicaSettings
from ._replicas import ReplicationMode as ReplicationMode

__all__ = [
    "ClusterCoordinator",
    "ClusterNode",
    "Etcd",
    "EtcdError",
    "KeyValue",
    "Litestream",
    "Member",
    "NotOwnerError",
    "ReplicaSettings",
    "ReplicationError",
    "ReplicationMode",
]
