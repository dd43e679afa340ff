"""Tasks that look at the cluster: test and status."""

import posixpath

from invoke import task

from .. import ray_nodes, report, shell
from ..runner import StepError
from .install import run_selftest
from .options import COMMON_HELP, Cluster, common


def cluster_test(cluster):
    """The whole-cluster test, run as a driver on the head; failures go to their nodes."""
    runner, head = cluster.runner, cluster.head
    hosts = cluster.selected_hosts()
    if not head.facts["gcs"]:
        runner.fail(head, "the cluster is not running: use inv start")
        return {}
    try:
        verdict = ray_nodes.driver(head, "cluster_check.py", "test",
                                   ",".join(host.ip for host in hosts), timeout=300)
    except StepError as error:
        runner.fail(head, error.message, error.output)
        return {}
    for host in hosts:
        errors = verdict["nodes"][host.ip]["errors"]
        if errors:
            runner.fail(host, "; ".join(errors))
        else:
            runner.outcomes[str(host.node)].message = "node and cluster tests ok"
    return verdict["nodes"]


@task(auto_shortflags=False, help=COMMON_HELP)
def test(c, nodes=None, hosts=None, key_file=None, username=None, installation_directory=None):
    """Test each node (runtest.py) and the cluster as a whole, from the head.

    Every node alive in the cluster, a task pinned to each node returns its hostname, an
    object made on one node is read on another, worker_code modules import everywhere."""
    cluster = Cluster(c, with_head=True,
                      **common(nodes, hosts, key_file, username, installation_directory))
    with cluster.runner as runner:
        cluster.stop_here("test")
        version = cluster.head.facts["ray"] or cluster.settings.version
        runner.each(lambda host: run_selftest(host, version), cluster.selected_hosts())
        nodes_view = cluster_test(cluster)
        rows = []
        for host in cluster.selected_hosts():
            seen = nodes_view.get(host.ip, {})
            rows.append((host.node, seen.get("hostname", "-"),
                         "alive" if seen.get("alive") else "-",
                         seen.get("object_from", "-"), ",".join(seen.get("modules", [])) or "-"))
        if rows:
            report.say("\ncluster test\n" + report.table(
                ("node", "hostname", "in cluster", "object read from", "worker_code modules"),
                rows))
        runner.finish("test")


@task(auto_shortflags=False, help=COMMON_HELP)
def status(c, nodes=None, hosts=None, key_file=None, username=None,
           installation_directory=None):
    """Show each node and the cluster: reachable, Python, Ray, running, workers.

    Then Ray's own view of the cluster (ray status) from the head."""
    cluster = Cluster(c, **common(nodes, hosts, key_file, username, installation_directory))
    with cluster.runner as runner:
        rows = []
        for host in runner.hosts:
            if host not in runner.ready:
                rows.append((host.node, "unreachable", "-", "-", "-", "-"))
                continue
            facts = host.facts
            role = "head" if facts["gcs"] else "worker" if facts["raylet"] else "stopped"
            rows.append((host.node, facts["hostname"], facts["python"], facts["ray"] or "-",
                         role, facts["workers"]))
        report.say(report.table(("node", "hostname", "python", "ray", "ray running", "workers"),
                                rows))
        head = runner.hosts[0]
        if head.node == cluster.nodes[0] and head in runner.ready and head.facts["gcs"]:
            setup = shell.quote(posixpath.join(head.home, "setup-env.sh"))
            result = head.run(f". {setup} && ray status", "run ray status", check=False)
            report.say("\nray status (on the head):\n" + (result.stdout or result.stderr))
        runner.finish("status")
