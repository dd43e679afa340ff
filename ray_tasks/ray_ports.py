"""Every port ray-tasks gives Ray, derived from the cluster's ``port`` (the head's GCS port).

A cluster owns the block of ``BLOCK`` ports starting at its ``port``: the fixed ports of Ray's
processes at the start of the block, then the wheel relay's (ray-tasks' own, open only while
``install`` or ``update`` passes the wheelhouse from node to node), the dashboard at
``port + 1886`` (8265 for the default port 6379, where operators expect it) and the worker
processes' range after the fixed ports.
Two clusters whose ports differ by at least ``BLOCK`` (6379 and 8379) use disjoint ports.
"""

import dataclasses

BLOCK = 2000
DASHBOARD_OFFSET = 1886
WORKER_OFFSETS = (100, 1799)
# The fixed ports: (name, offset from the GCS port, what Ray calls it in `ray start`).
FIXED = (
    ("GCS", 0, "port"),
    ("node manager", 1, "node-manager-port"),
    ("object manager", 2, "object-manager-port"),
    ("Ray client server", 3, "ray-client-server-port"),
    ("dashboard agent grpc", 4, "dashboard-agent-grpc-port"),
    ("dashboard agent http", 5, "dashboard-agent-listen-port"),
    ("metrics export", 6, "metrics-export-port"),
    ("runtime env agent", 7, "runtime-env-agent-port"),
    ("dashboard", DASHBOARD_OFFSET, "dashboard-port"),
)
# Ports only the head listens on (the dashboard on its loopback address only).
HEAD_ONLY = ("GCS", "Ray client server", "dashboard")
RELAY_OFFSET = 8


HIGHEST_PORT = 65536 - BLOCK  # the highest ``port`` whose block fits below 65536


@dataclasses.dataclass(frozen=True)
class PortPlan:
    """The ports of one cluster: ``fixed`` maps each name to its port, ``workers`` is the
    (first, last) port of the worker range, ``relay`` the wheel relay's."""

    fixed: dict
    workers: tuple
    relay: int

    def ports(self, head):
        """The fixed ports a node listens on (the head's ports too for ``head``)."""
        return {name: port for name, port in self.fixed.items()
                if head or name not in HEAD_ONLY}

    def all_ports(self):
        """Every port of the plan, the worker range included."""
        first, last = self.workers
        return set(self.fixed.values()) | set(range(first, last + 1)) | {self.relay}

    def start_args(self, head):
        """The `ray start` arguments giving Ray these ports (``--port`` for the ``head``
        only; the others on every node, as Ray checks a worker node's ports against its
        defaults for the head-only ones, the client server's 10001 and the dashboard's)."""
        flags = {name: flag for name, _, flag in FIXED}
        args = [f"--{flags[name]}={port}" for name, port in self.fixed.items()
                if name != "GCS" or head]
        first, last = self.workers
        return [*args, f"--min-worker-port={first}", f"--max-worker-port={last}"]


def plan(port):
    """The PortPlan of the cluster whose GCS listens on ``port`` (at most HIGHEST_PORT)."""
    first, last = WORKER_OFFSETS
    return PortPlan({name: port + offset for name, offset, _ in FIXED},
                    (port + first, port + last), port + RELAY_OFFSET)


def overlap(port, other):
    """The problem, in one line, when the clusters at ``port`` and ``other`` would share a
    port; None when they use disjoint ports."""
    shared = plan(port).all_ports() & plan(other).all_ports()
    if not shared:
        return None
    return (f"ports {min(shared)}-{max(shared)} would be shared by this cluster (port "
            f"{port}) and the one at port {other}: set ray.port at least {BLOCK} apart")
