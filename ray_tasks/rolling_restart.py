"""restart-workers --rolling: new worker code one node at a time while the cluster works.

Each worker node, in nodes-file order, is drained through Ray (its DrainNode, as Ray's
autoscaler does before removing a node: no new task is scheduled there, and its raylet
leaves by itself once the tasks running there are done), then stopped and joined again, so
that every worker process it starts imports the new code; the next node waits until it is
alive. The head is not drained (its raylet leaving would end the drivers attached there): it
comes last, and each of its worker processes is replaced once it is idle, its GCS and
raylet running on.
"""

from . import ray_nodes, report
from .cluster_record import ClusterRecord
from .hosts import StepError


def restart_rolling(cluster, targets, force):
    """Roll the worker nodes among ``targets`` (which hold the new code) one at a time,
    then the head's workers; a node that does not come back stops the roll."""
    runner, head = cluster.runner, cluster.head
    settings = joining_settings(cluster)
    address = ray_nodes.head_address(head, settings.port)
    others = [host for host in targets if host is not head]
    for number, host in enumerate(others):
        rolled = runner.each(lambda host: roll_node(cluster, host, settings, address, force),
                             [host])
        if rolled.succeeded:
            ray_nodes.wait_alive(runner, head, [host], settings.join_timeout)
        if host not in runner.ready or not runner.outcomes[host.node].ok:
            stop_rolling(cluster, host, others[number + 1:])
            return
    if head in targets:
        runner.each(lambda host: replace_head_workers(host, settings.drain_timeout, force),
                    [head])


def joining_settings(cluster):
    """The settings a node rejoins with: those the running cluster was started with."""
    head, settings = cluster.head, cluster.settings
    record = head.facts.cluster or ClusterRecord.of(
        settings, ray_nodes.head_address(head, settings.port))
    return record.settings(settings)


def stop_rolling(cluster, failed, rest):
    """Fail the nodes after ``failed`` (not restarted) and the head, keeping their old code."""
    for host in [*rest, cluster.head]:
        if host in cluster.runner.ready:
            cluster.runner.fail(host, f"not restarted: the rolling restart stopped at "
                                f"{failed.node}; its other nodes keep the old worker code")


def roll_node(cluster, host, settings, address, force):
    """Drain ``host``, then stop Ray there and join it again (its worker processes then
    import the new code)."""
    head = cluster.head
    with report.waiting(f"draining {host.node}"):
        drained = drain(head, host, settings.drain_timeout)
    if drained == "busy" and not force:
        raise StepError(f"tasks still running after {settings.drain_timeout}s of draining "
                        "(ray.drain_timeout): Ray schedules nothing new here; wait and run "
                        "restart-workers --rolling again, or add --force to stop the node "
                        "now (Ray retries its tasks elsewhere)")
    ray_nodes.stop(host)
    ray_nodes.join_cluster(host, settings, address)
    return f"drained ({drained}), joined {address} again"


def drain(head, host, timeout):
    """Drain ``host`` through the GCS, from the head; returns "left" (its raylet left the
    cluster), "busy" (still running tasks after ``timeout``) or "not in the cluster"."""
    view = ray_nodes.run_on_head(head, "cluster_check.py", "drain", host.ip, str(timeout),
                                 timeout=timeout + 60)
    drained = view["nodes"][host.ip]["drained"]
    if drained.startswith("refused"):
        raise StepError(f"Ray did not drain the node: {drained}")
    return drained


def replace_head_workers(head, timeout, force):
    """Replace the head's worker processes, each once it is idle (at most ``timeout``
    seconds; with ``force`` those still busy then are killed, and Ray retries their tasks)."""
    args = ["--force"] if force else []
    result = head.run_node_script("replace-idle-workers", str(timeout), *args,
                                  what="replace the worker processes", check=False)
    if result.exited == 3:
        raise StepError(f"tasks still running after {timeout}s (ray.drain_timeout): "
                        f"{result.stdout.strip()}; run restart-workers --rolling again "
                        "(worker nodes are rolled already), or add --force")
    if result.exited != 0:
        raise StepError.from_result("could not replace the worker processes", result)
    return result.stdout.strip()
