"""The network check: from every node at once, can it reach the head's GCS port and every
other node on the ports Ray will use; is the address it will announce one of its own; are
this cluster's ports free on it, and apart from the other ray-tasks clusters running there.

Every node runs node_scripts/network_check.py in one round trip, all at the same time: each
listens on its own ports that are free (a port this cluster's Ray holds answers by itself, so
the check is the same with Ray stopped or running) and connects to the others' ports.
"""

import json

from . import ray_commands, ray_ports, report
from .hosts import StepError, json_answer

TIMEOUT = 2  # seconds per connection
WINDOW = 2  # seconds a refused connection is tried again (the peer may be starting its check)
# The ports every node connects to on every other node (the head's GCS port too).
REACHED = ("node manager", "object manager", "dashboard agent grpc", "worker ports")
# At most this many nodes are checked at once: a node checked later than its peers would find
# their listeners gone (the check of a larger fleet needs --hosts subsets).
MAX_AT_ONCE = 200


def listened(plan, is_head):
    """{name: port} of the ports a node's Ray listens on for other nodes (the first port of
    the worker range standing for the range; the dashboard listens on loopback only)."""
    ports = {name: port for name, port in plan.ports(is_head).items() if name != "dashboard"}
    return dict(ports, **{"worker ports": plan.workers[0]})


def node_spec(host, hosts, head, plan):
    """What ``host``'s check listens on and connects to (as network_check.py reads it)."""
    targets = []
    for other in hosts:
        if other is host:
            continue
        ports = listened(plan, other is head)
        names = ("GCS", *REACHED) if other is head else REACHED
        targets += [[str(other.node), name, other.ip, ports[name]] for name in names]
    return {"home": host.home, "ip": host.ip, "listen": listened(plan, host is head),
            "workers": list(plan.workers), "running": bool(host.state.raylet),
            "connect": targets, "timeout": TIMEOUT, "window": WINDOW}


def check_node(host, hosts, head, port, blocked):
    """Run the check on ``host``; its failed connections go to ``blocked`` as lines, and
    it fails (StepError) naming every problem. Returns its notes, if any."""
    spec = node_spec(host, hosts, head, ray_ports.plan(port))
    result = host.run(ray_commands.network_check(host.settings.python, json.dumps(spec)),
                      "check the network", timeout=WINDOW + 4 * TIMEOUT + 30, check=False)
    answer = json_answer(result, f"the network check failed (exit {result.exited})")
    problems = list(answer["problems"])
    for home, other in sorted(answer["others"].items()):
        overlap = ray_ports.overlap(port, other)
        if overlap:
            problems.append(f"the cluster in {home} runs here: {overlap}")
    failed = [f"{host.node} → {node} {what} {ip}:{number} {reason}"
              for node, what, ip, number, reason in answer["failed"]]
    blocked.extend(failed)
    if failed:
        problems.append(f"{len(failed)} connection(s) to other nodes failed (listed below)")
    if problems:
        raise StepError("; ".join(problems))
    return "; ".join(answer.get("notes", [])) or None


def check(cluster, port):
    """Check the network between the cluster's ready nodes (the head among them) for the
    cluster at ``port``; print what failed. True when all is well."""
    runner, head = cluster.runner, cluster.head
    hosts = runner.ready
    if head not in hosts:
        return False
    blocked = []
    results = runner.each(lambda host: check_node(host, hosts, head, port, blocked), hosts,
                          width=min(len(hosts), MAX_AT_ONCE))
    if blocked:
        report.say("\nnetwork check: blocked connections (from → to what address reason)\n"
                   + "\n".join(f"  {line}" for line in sorted(blocked)))
    return not results.failed
