"""Tasks that look at the cluster: test and status."""

import contextlib
import signal
import socket
import threading
import time

from invoke import task
from invoke.exceptions import ThreadException

from .. import cluster_lifecycle, cluster_status, network, ray_nodes, ray_ports, report
from ..cluster import Cluster
from ..hosts import StepError
from ..user_errors import user_error
from ..cluster_tests import cluster_test, run_selftest
from .options import COMMON_HELP, common

# How long status waits for the head to answer as an alive node of its cluster.
STATUS_WAIT = 10


def print_cluster_test(cluster, view):
    """The table of what the cluster test saw of each selected node (none without a view)."""
    rows = []
    for host in cluster.selected_hosts():
        seen = view.get(host.ip, {})
        rows.append((host.node, seen.get("hostname", "-"), "alive" if seen.get("alive") else "-",
                     seen.get("object_from", "-"), ",".join(seen.get("modules", [])) or "-"))
    if rows:
        report.say("\ncluster test\n" + report.table(
            ("node", "hostname", "in cluster", "object read from", "worker_code modules"), rows))


@task(auto_shortflags=False, help=COMMON_HELP)
def test(c, nodes=None, hosts=None, key_file=None, username=None, installation_directory=None,
         json=False, verbose=False):
    """Test each node (runtest.py) and the cluster as a whole, from the head.

    Every node alive in the cluster, a task pinned to each node returns its hostname, an
    object made on one node is read on another, worker_code modules import everywhere."""
    cluster = Cluster(c, with_head=True,
                      **common(nodes, hosts, key_file, username, installation_directory,
                               json, verbose))
    with cluster.runner as runner:
        cluster.stop_here("test")
        version = cluster.head.facts.ray or cluster.settings.version
        runner.each(lambda host: run_selftest(host, version), cluster.selected_hosts())
        print_cluster_test(cluster, cluster_test(cluster))
        runner.finish("test")


def print_nodes(runner):
    """The table of every node as probed (unreachable ones too)."""
    rows = []
    for host in runner.hosts:
        if host not in runner.ready:
            rows.append((host.node, "unreachable", "-", "-", "-", "-"))
            continue
        facts = host.facts
        rows.append((host.node, facts.hostname, facts.python, facts.ray or "-",
                     cluster_status.running_as(facts), facts.workers))
    report.say(report.table(("node", "hostname", "python", "ray", "ray running", "workers"),
                            rows))


def print_resources(cluster):
    """Each node's resources as Ray reports them, asked of the head once (when it runs);
    returns the cluster's view ({} when there is none)."""
    runner, head = cluster.runner, cluster.runner.hosts[0]
    if head.node == cluster.nodes[0] and head in runner.ready and head.state.gcs:
        try:
            view = ray_nodes.cluster_view(head, [head], STATUS_WAIT)
        except StepError as error:
            runner.fail(head, error.message, error.output)
            return {}
        report.say("\nresources (as Ray reports them, from the head):\n"
                   + cluster_lifecycle.resource_table(runner.ready, view))
        return view
    return {}


def status_details(runner, view, port):
    """What status --json adds to the summary: each node, and the cluster as Ray sees it."""
    address = ray_nodes.head_address(runner.hosts[0], port) if view else None
    return {"nodes": [cluster_status.node_status(host, runner.outcomes[host.node], view)
                      for host in runner.hosts],
            "cluster": cluster_status.cluster_status(address, view)}


@task(auto_shortflags=False, help=COMMON_HELP)
def status(c, nodes=None, hosts=None, key_file=None, username=None,
           installation_directory=None, json=False, verbose=False):
    """Show each node and the cluster: reachable, Python, Ray, running, workers.

    Then each node's CPUs, GPUs, memory, object store and custom resources as Ray reports
    them, asked of the head. With --json, all of it as one JSON document."""
    cluster = Cluster(c, **common(nodes, hosts, key_file, username, installation_directory,
                                  json, verbose))
    with cluster.runner as runner:
        print_nodes(runner)
        view = print_resources(cluster)
        runner.finish("status", details=status_details(runner, view, cluster.settings.port))


@task(auto_shortflags=False, help=COMMON_HELP)
def check_network(c, nodes=None, hosts=None, key_file=None, username=None,
                  installation_directory=None, json=False, verbose=False):
    """Check from every node at once that it reaches the others on the ports Ray uses.

    The head's GCS port and every other node's Ray ports, and that the address the node
    announces is its own.

    Works with Ray stopped or running. Prints each blocked connection (from, to, what,
    address, why) and exits 1 naming the failing nodes; prints "network ok" otherwise."""
    cluster = Cluster(c, with_head=True,
                      **common(nodes, hosts, key_file, username, installation_directory,
                               json, verbose))
    with cluster.runner as runner:
        cluster.stop_here("check-network")
        if network.check(cluster, cluster.ray_port()):
            report.say("network ok")
        runner.finish("check-network")


def free_local_port(text):
    """The tunnel's local port as a number, checked free on 127.0.0.1 before anything
    connects (the tunnel binds it in a thread, where a failure would go unseen while
    another program answers on the port)."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        user_error(f"--local-port: {text!r} is not a port number (1-65535)")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", port))
        except OSError as error:
            user_error(f"local port {port} on 127.0.0.1 is not free ({error.strerror}): another "
                       "program listens there; choose another with --local-port")
    return port


def wait_listening(port, timeout=10):
    """Wait until the tunnel's local end accepts connections (it opens in a thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)


def say_open(runner, head, url, what, after=""):
    """Say where the dashboard is and how to log in (with --json, the document too, its
    ``url`` added, while the tunnel stays open)."""
    report.say(f"{what}: {url}{after}")
    report.say(log_in_hint(runner.settings))
    if report.mode.json:
        runner.note(head, f"dashboard at {url}")
        runner.summarize("dashboard", details={"url": url})


def log_in_hint(settings):
    """How a browser logs in to the dashboard: the page asks for the cluster's token once
    (the tunnel does not add it: any local user can reach a local port)."""
    return ("log in: the page asks for the cluster's token once; paste the contents of "
            f"{settings.auth_token_file} (the browser keeps it as a cookie)")


@task(auto_shortflags=False, help={**COMMON_HELP, "local-port": "Port on this machine for "
                                                 "the tunnel (default: the head's dashboard "
                                                 "port, 8265 for ray.port 6379)."})
def dashboard(c, local_port=None, nodes=None, hosts=None, key_file=None, username=None,
              installation_directory=None, json=False, verbose=False):
    """Open an SSH tunnel to the head's dashboard (it listens on the head's 127.0.0.1 only).

    The dashboard asks for the cluster's token once (the contents of ray.auth_token_file);
    the tunnel does not add it, so other local users reaching the port get no further.
    Prints the local URL and keeps the tunnel open until Ctrl-C, which closes it (exit 0);
    a Ctrl-C before the tunnel is open interrupts the task (exit 130)."""
    cluster = Cluster(c, head_only=True,
                      **common(nodes, hosts, key_file, username, installation_directory,
                               json, verbose))
    if local_port is not None and not cluster.local:
        local_port = free_local_port(local_port)
    with cluster.runner as runner:
        cluster.stop_here("dashboard")
        head = cluster.head
        if not head.state.gcs:
            runner.fail(head, "the cluster is not running: use inv start")
            runner.finish("dashboard")
        remote_port = ray_ports.plan(cluster.ray_port()).fixed["dashboard"]
        if cluster.local:
            say_open(runner, head, f"http://127.0.0.1:{remote_port}", "dashboard")
            return
        local_port = free_local_port(remote_port) if local_port is None else local_port
        url = f"http://127.0.0.1:{local_port}"
        # A browser that drops a connection mid-page makes the tunnel's thread end with
        # ConnectionResetError, which Fabric raises when the tunnel closes: not a failure.
        with contextlib.suppress(ThreadException), head.connection.forward_local(
                local_port, remote_port=remote_port, remote_host="127.0.0.1",
                local_host="127.0.0.1"):
            wait_listening(local_port)
            say_open(runner, head, url, f"dashboard of {head.node}",
                     "  (Ctrl-C closes the tunnel)")
            signal.signal(signal.SIGINT, signal.default_int_handler)
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                report.say("tunnel closed")
