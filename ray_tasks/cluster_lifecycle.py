"""The cluster's life: the checks before a start, starting the head and joining the other
nodes while a watcher on the head waits for them, rejoining stale nodes, syncing the worker
code, replacing workers, stopping, and the summary that says how to attach a driver."""

import concurrent.futures
import dataclasses

from . import (config, installing, network, ray_nodes, report, rolling_restart, shell,
               worker_code)
from .cluster_record import ClusterRecord
from .host_ranges import fold
from .hosts import StepError
from .node_settings import RAY_RESOURCES


def check_ready_to_start(cluster):
    """Every node holds Ray at the head's version under the head's Python, has room in
    /dev/shm for its object store, and the head's port is free unless the head runs."""
    runner, head, settings = cluster.runner, cluster.head, cluster.settings
    if head in runner.ready and not head.state.gcs and not head.facts.port_free:
        runner.fail(head, f"port {settings.port} is in use on the head (another Ray, or "
                    "Redis?): stop it or set ray.port")
    for host in runner.ready:
        store = host.node.settings.over(settings).object_store_memory
        if store and not host.state.raylet and host.facts.shm_free < store:
            runner.fail(host, f"/dev/shm has {host.facts.shm_free // 2**20} MiB free, less "
                        f"than the object store ({store // 2**20} MiB): free it or lower "
                        "ray.object_store_memory (or the node's object_store_memory=)")
    for host in runner.ready:
        if not host.facts.ray:
            runner.fail(host, f"Ray is not installed in {host.home}: run inv install")
        elif host is not head and host.facts.ray != head.facts.ray:
            runner.fail(host, f"Ray {host.facts.ray} here but {head.facts.ray} on the head: "
                        "run inv update to put every node on one release")
        elif host.facts.python != head.facts.python:
            runner.fail(host, f"Python {host.facts.python} here but {head.facts.python} "
                        "on the head: Ray refuses a node whose Python differs")


def check_network(cluster):
    """When a node is about to start, check the network between the ready nodes (see
    network.py): a node with a blocked connection fails the preflight."""
    if any(not host.state.raylet for host in cluster.selected_hosts()):
        network.check(cluster, cluster.settings.port)


def joining_settings(cluster):
    """The settings nodes start with: a running head's recorded ones (its cluster.json) for
    the cluster it runs, else the configured ones. Says so when they differ and a node is
    about to join."""
    head, settings = cluster.head, cluster.settings
    running = head in cluster.runner.ready and head.state.gcs
    record = head.facts.cluster if running else None
    recorded = record.settings(settings) if record else settings
    differing = [key for key in ClusterRecord.SETTINGS
                 if getattr(settings, key) != getattr(recorded, key)]
    joining = [host for host in cluster.selected_hosts() if not host.state.raylet]
    if differing and joining:
        report.say("start: the running cluster was started with "
                   + ", ".join(_setting(recorded, key) for key in differing)
                   + " (recorded on the head): new nodes join with that, not with "
                   + ", ".join(_setting(settings, key) for key in differing)
                   + "; to change it, inv stop then inv start")
    return recorded


def _setting(settings, key):
    value = getattr(settings, key)
    return f"{key} unset (Ray decides)" if value is None else f"{key}={value!r}"


def sync_code(cluster, bundle, hosts):
    """Ship the worker code to ``hosts`` (with the wheels of its requirements.txt when the
    wheelhouse is on); returns the hosts that have it."""
    settings = cluster.settings
    if bundle.requirements and settings.wheelhouse:
        hosts = installing.push_wheels(cluster.runner, settings, hosts,
                                       ["-r", bundle.requirements],
                                       worker_code.requirements_name(bundle))
    return cluster.runner.each(lambda host: worker_code.sync(host, bundle, settings.wheelhouse),
                               hosts, what="worker code synced").succeeded


def start_cluster(cluster, settings, bundle=None):
    """Start the head (if selected and not running), then join the other selected nodes in
    parallel, and wait until they are alive. Returns the cluster's view of each node."""
    runner, head = cluster.runner, cluster.head
    address = ray_nodes.head_address(head, settings.port)
    stopped = [host for host in cluster.selected_hosts() if not host.state.raylet]
    if not stopped:
        report.say("start: every node is already running; nothing to do")
    say_other_code_runs(cluster, bundle)
    if bundle:
        stopped = sync_code(cluster, bundle, stopped)
    record = ClusterRecord.of(settings, address)
    token = cluster.token
    runner.each(lambda host: ray_nodes.write_cluster_files(host, record, token, cluster.local),
                stopped)
    others = [host for host in stopped if host is not head]
    view = start_and_watch(cluster, settings, address, others)
    if view:
        running = [host for host in cluster.selected_hosts()
                   if host is not head and host not in others]
        runner.each(lambda host: "already running", running)
        rejoin_stale(cluster, settings, address, running, view)
    return view


def say_other_code_runs(cluster, bundle):
    """Say which running nodes keep other worker code than ``bundle`` (start leaves them)."""
    for host in cluster.selected_hosts():
        if host.state.raylet and bundle and host.state.worker_code != bundle.digest:
            report.host_line(host.node, "running with other worker code: inv restart-workers "
                             "loads the new code")


def rejoin_stale(cluster, settings, address, running, view):
    """Restart and rejoin the ``running`` nodes that the cluster's ``view`` does not list as
    alive (they run Ray but are not in the cluster); ``view`` takes their new state."""
    runner, head = cluster.runner, cluster.head
    stale = [host for host in running if not view.get(host.ip, {}).get("alive")]
    if not stale or head not in runner.ready:
        return
    for host in stale:
        report.host_line(host.node, "Ray runs here but the node is not in the cluster: "
                                    "restarting it")
    runner.each(ray_nodes.stop, stale)
    rejoining = runner.each(lambda host: ray_nodes.join_cluster(host, settings, address), stale)
    view.update(ray_nodes.wait_alive(runner, head, rejoining.succeeded, settings.join_timeout))


def start_and_watch(cluster, settings, address, others):
    """Start the head (if selected and stopped) and join ``others`` while a watcher on the
    head already waits for them all (its start-up overlaps the starts). Returns the
    cluster's view, failing nodes not alive; {} when the head is not running."""
    runner, head = cluster.runner, cluster.head
    if head not in runner.ready:
        return fail_headless(cluster)
    cancel = ray_nodes.cancel_file(head)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as background:
        watching = background.submit(ray_nodes.cluster_view, head, [head, *others],
                                     settings.join_timeout, cancel)
        if cluster.head_selected():
            runner.each(lambda host: ray_nodes.start_head(host, settings, cluster.local), [head])
        if head not in runner.ready or not head.state.gcs:
            ray_nodes.cancel_wait(head, cancel)
            return fail_headless(cluster)
        joining = runner.each(lambda host: ray_nodes.join_cluster(host, settings, address),
                              others, what="nodes joined")
        try:
            with report.waiting(f"waiting for {len(joining.succeeded) + 1} nodes to be alive"):
                view = watching.result()
        except StepError as error:
            runner.fail(head, error.message, error.output)
            return {}
    ray_nodes.fail_not_alive(runner, [head, *joining.succeeded], view, settings.join_timeout)
    return view


def fail_headless(cluster):
    """Fail every selected node but the head, which is not running; returns {}."""
    head = cluster.head
    for host in cluster.selected_hosts():
        if host is not head:
            cluster.runner.fail(host, f"not started: the head {head.node} is not running")
    return {}


def stop_cluster(cluster, hosts):
    """Stop Ray on ``hosts``: the workers first, then the head (a worker whose head is
    already gone waits out a long grace period)."""
    runner, head = cluster.runner, cluster.nodes[0]
    runner.each(ray_nodes.stop, [host for host in hosts if host.node != head],
                what="nodes stopped")
    runner.each(ray_nodes.stop, [host for host in hosts if host.node == head])


def attach_command(cluster):
    """The command an operator types to get a driver shell on the head."""
    head, settings = cluster.head, cluster.settings
    setup = f"source {shell.quote(head.home + '/setup-env.sh')} && python"
    if cluster.local:
        return setup
    ssh = ["ssh", "-t"]
    if settings.key_file:
        ssh += ["-i", settings.key_file]
    if head.node.port:
        ssh += ["-p", str(head.node.port)]
    user = head.node.user or settings.username
    ssh.append(f"{user}@{head.node.host}" if user else head.node.host)
    return shell.join(*ssh) + " " + shell.quote(setup)


def _bytes(amount):
    return f"{amount / 2**30:.1f} GiB" if amount >= 2**30 else f"{int(amount) // 2**20} MiB"


def resource_cells(resources):
    """A node's resources as Ray reports them (its totals, from the cluster view): CPUs,
    GPUs, memory, object store and the custom resources; dashes for a node not in it."""
    if not resources:
        return ("-",) * 5
    custom = [f"{name}={amount:g}" for name, amount in sorted(resources.items())
              if name not in RAY_RESOURCES and ":" not in name]  # not node:IP and such
    return (f"{resources.get('CPU', 0):g}", f"{resources.get('GPU', 0):g}",
            _bytes(resources.get("memory", 0)), _bytes(resources.get("object_store_memory", 0)),
            ",".join(custom) or "-")


def resource_table(hosts, view):
    """The table of ``hosts`` with their addresses and resources in ``view``: one row for
    the nodes that have the same resources, their names and addresses folded into ranges."""
    groups = {}
    for host in hosts:
        cells = resource_cells(view.get(host.ip, {}).get("resources"))
        groups.setdefault(cells, []).append(host)
    rows = [(fold(host.node for host in group), fold(host.ip or "-" for host in group),
             *cells) for cells, group in groups.items()]
    return report.table(("node", "ip", "CPUs", "GPUs", "memory", "object store",
                         "custom resources"), rows)


def print_cluster(cluster, view):
    """The cluster summary and how to attach a driver."""
    if not view:
        return
    hosts = cluster.selected_hosts()
    alive = [host for host in hosts if view.get(host.ip, {}).get("alive")]
    address = ray_nodes.head_address(cluster.head, cluster.settings.port)
    report.say(f"\ncluster at {address}: {len(alive)} node(s) alive\n"
               + resource_table(hosts, view))
    report.say(f"\nattach a driver on the head:\n  {attach_command(cluster)}")


def check_restartable(cluster, force, rolling=False):
    """Fail the head unless the cluster runs, and (without ``force``, unless ``rolling``)
    each node whose workers run tasks."""
    runner, head = cluster.runner, cluster.head
    if not head.state.gcs:
        runner.fail(head, "the cluster is not running: use inv start")
    for host in cluster.selected_hosts():
        if host.facts.busy and not force and not rolling:
            runner.fail(host, f"tasks are running ({', '.join(host.facts.busy)}): wait "
                        "for them, or use --force")


def restart_workers(cluster, bundle, num_workers, force, rolling=False):
    """Sync the worker code, then replace the worker processes on the selected nodes (the
    worker nodes rejoin instead when ``num_workers`` changes; one node at a time, drained
    first, when ``rolling``: see rolling_restart.py), and wait until all are alive."""
    runner, head = cluster.runner, cluster.head
    targets = sync_code(cluster, bundle, cluster.selected_hosts())
    if rolling:
        return rolling_restart.restart_rolling(cluster, targets, force)
    record = head.facts.cluster or ClusterRecord.of(cluster.settings, ray_nodes.head_address(
        head, cluster.settings.port))
    if num_workers and num_workers != record.num_workers:
        rejoin_with_workers(cluster, targets, record, num_workers, force)
    else:
        runner.each(lambda host: ray_nodes.replace_workers(host, force), targets)
    ray_nodes.wait_alive(runner, head, [host for host in targets if host in runner.ready],
                         cluster.settings.join_timeout)


def rejoin_with_workers(cluster, targets, record, num_workers, force):
    """Give ``targets`` a new worker count: the worker nodes stop and rejoin with it, the
    head replaces its workers (keeping its own count); cluster.json records the new one."""
    runner, head = cluster.runner, cluster.head
    settings = config.replace(cluster.settings, num_workers=num_workers)
    rejoin = [host for host in targets if host is not head]
    stop_cluster(cluster, rejoin)
    address = ray_nodes.head_address(head, settings.port)
    runner.each(lambda host: ray_nodes.join_cluster(host, settings, address), rejoin)
    runner.each(lambda host: ray_nodes.replace_workers(host, force),
                [host for host in targets if host is head])
    new_record = dataclasses.replace(record, num_workers=settings.num_workers)
    token = cluster.token
    runner.each(lambda host: ray_nodes.write_cluster_files(
        host, new_record, token, cluster.local), targets)
