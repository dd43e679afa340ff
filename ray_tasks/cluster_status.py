"""What ``inv status --json`` says of each node and of the cluster, as plain data (the
schema is in README.md). No I/O."""

from .node_settings import RAY_RESOURCES


def running_as(facts):
    """How Ray of this installation runs on a probed node: head, worker or stopped."""
    return "head" if facts.gcs else "worker" if facts.raylet else "stopped"


def _resources(seen):
    """A node's totals as Ray reports them (``seen``: its entry in the cluster view)."""
    totals = (seen or {}).get("resources") or {}
    return {
        "cpus": totals.get("CPU") if totals else None,
        "gpus": totals.get("GPU", 0) if totals else None,
        "memory": totals.get("memory") if totals else None,
        "object_store_memory": totals.get("object_store_memory") if totals else None,
        "resources": {name: amount for name, amount in sorted(totals.items())
                      if name not in RAY_RESOURCES and ":" not in name},
    }


def node_status(host, outcome, view):
    """One node: as probed (None where it could not be reached), as Ray sees it in
    ``view`` (None without a view of the cluster), and its errors."""
    facts = host.facts
    seen = view.get(host.ip) if view and host.ip else None
    return {
        "node": str(host.node),
        "address": host.ip,
        "reachable": facts is not None,
        "hostname": facts.hostname if facts else None,
        "python": facts.python if facts else None,
        "ray": facts.ray if facts else None,
        "running_as": running_as(facts) if facts else None,
        "workers": facts.workers if facts else None,
        "alive": bool(seen and seen.get("alive")) if view else None,
        **_resources(seen),
        "errors": [] if outcome.ok else [outcome.message],
    }


def cluster_status(head_address, view):
    """The cluster as Ray sees it from the head: its address and every node it lists
    ({address: {alive, resources}}), nodes.txt's or not; not running without a view."""
    return {"address": head_address if view else None, "running": bool(view),
            "nodes": {ip: {"alive": bool(seen.get("alive")),
                           "resources": seen.get("resources") or {}}
                      for ip, seen in (view or {}).items()}}
