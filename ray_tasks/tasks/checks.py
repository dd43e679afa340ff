"""Tasks that look at the cluster: test and status."""

import posixpath
import socket
import threading
import time

from invoke import task

from .. import report, shell
from ..verify import cluster_test, run_selftest
from .options import COMMON_HELP, Cluster, common

DASHBOARD_PORT = 8265


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


def wait_listening(port, timeout=10):
    """Wait until the tunnel's local end accepts connections (it opens in a thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)


@task(auto_shortflags=False, help={**COMMON_HELP,
                                   "local-port": "Port on this machine for the tunnel."})
def dashboard(c, local_port=8265, nodes=None, hosts=None, key_file=None, username=None,
              installation_directory=None):
    """Open an SSH tunnel to the head's dashboard (it listens on the head's 127.0.0.1 only).

    Prints the local URL and keeps the tunnel open until Ctrl-C."""
    cluster = Cluster(c, head_only=True,
                      **common(nodes, hosts, key_file, username, installation_directory))
    with cluster.runner as runner:
        cluster.stop_here("dashboard")
        head = cluster.head
        if not head.facts["gcs"]:
            runner.fail(head, "the cluster is not running: use inv start")
            runner.finish("dashboard")
        url = f"http://127.0.0.1:{local_port}"
        if cluster.local:
            report.say(f"dashboard: {url}")
            return
        with head.connection.forward_local(int(local_port), remote_port=DASHBOARD_PORT,
                                           remote_host="127.0.0.1", local_host="127.0.0.1"):
            wait_listening(int(local_port))
            report.say(f"dashboard of {head.node}: {url}  (Ctrl-C closes the tunnel)")
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                report.say("tunnel closed")
