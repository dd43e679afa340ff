"""Tasks that run the cluster: start, stop, restart-workers."""

import concurrent.futures

from invoke import task

from .. import config, installing, ownership, ray_nodes, report, shell, worker_code
from ..hosts import StepError
from .options import COMMON_HELP, Cluster, common, user_errors

RECORDED_SETTINGS = ("num_workers", "port", "object_store_memory", "start_args")

START_HELP = {
    **COMMON_HELP,
    "worker-dir": "Directory of worker code to sync to every node's worker_code "
                  "(ray.worker_dir); its requirements.txt, if any, is installed.",
    "num-workers": "Worker processes (Ray's --num-cpus) on each node (ray.num_workers).",
}


def check_ready_to_start(cluster):
    """Every node holds Ray at the head's version under the head's Python, has room in
    /dev/shm for its object store, and the head's port is free unless the head runs."""
    runner, head, settings = cluster.runner, cluster.head, cluster.settings
    if head in runner.ready and not head.state.gcs and not head.facts.port_free:
        runner.fail(head, f"port {settings.port} is in use on the head (another Ray, or "
                    "Redis?): stop it or set ray.port")
    store = settings.object_store_memory
    for host in runner.ready:
        if store and not host.state.raylet and host.facts.shm_free < store:
            runner.fail(host, f"/dev/shm has {host.facts.shm_free // 2**20} MiB free, less "
                        f"than the object store ({store // 2**20} MiB): free it or lower "
                        "ray.object_store_memory")
    for host in runner.ready:
        if not host.facts.ray:
            runner.fail(host, f"Ray is not installed in {host.home}: run inv install")
        elif host is not head and host.facts.ray != head.facts.ray:
            runner.fail(host, f"Ray {host.facts.ray} here but {head.facts.ray} on the head: "
                        "run inv update to put every node on one release")
        elif host.facts.python != head.facts.python:
            runner.fail(host, f"Python {host.facts.python} here but {head.facts.python} "
                        "on the head: Ray refuses a node whose Python differs")


def joining_settings(cluster):
    """The settings nodes start with: a running head's recorded ones (its cluster.json) for
    the cluster it runs, else the configured ones. Says so when they differ and a node is
    about to join."""
    head, settings = cluster.head, cluster.settings
    running = head in cluster.runner.ready and head.state.gcs
    record = (head.facts.cluster or {}) if running else {}
    recorded = config.replace(settings, **{key: record[key] for key in RECORDED_SETTINGS
                                           if key in record})
    differing = [key for key in RECORDED_SETTINGS
                 if getattr(settings, key) != getattr(recorded, key)]
    joining = [host for host in cluster.selected_hosts() if not host.state.raylet]
    if differing and joining:
        report.say("start: the running cluster was started with "
                   + ", ".join(f"{key}={getattr(recorded, key)!r}" for key in differing)
                   + " (recorded on the head): new nodes join with that, not with "
                   + ", ".join(f"{key}={getattr(settings, key)!r}" for key in differing)
                   + "; to change it, inv stop then inv start")
    return recorded


def sync_code(cluster, bundle, hosts):
    """Ship the worker code to ``hosts`` (with the wheels of its requirements.txt when the
    wheelhouse is on); returns the hosts that have it."""
    settings = cluster.settings
    if bundle.requirements and settings.wheelhouse:
        hosts = installing.push_wheels(cluster.runner, settings, hosts,
                                       ["-r", bundle.requirements],
                                       worker_code.requirements_name(bundle))
    return cluster.runner.each(lambda host: worker_code.sync(host, bundle, settings.wheelhouse),
                               hosts).succeeded


def start_cluster(cluster, settings, bundle=None):
    """Start the head (if selected and not running), then join the other selected nodes in
    parallel, and wait until they are alive. Returns the cluster's view of each node."""
    runner, head = cluster.runner, cluster.head
    address = ray_nodes.head_address(head, settings.port)
    record = ray_nodes.cluster_record(settings, address)
    stopped = [host for host in cluster.selected_hosts() if not host.state.raylet]
    if not stopped:
        report.say("start: every node is already running; nothing to do")
    for host in cluster.selected_hosts():
        if host.state.raylet and bundle and host.state.worker_code != bundle.digest:
            report.host_line(host.node, "running with other worker code: inv restart-workers "
                             "loads the new code")
    if bundle:
        stopped = sync_code(cluster, bundle, stopped)
    token = cluster.token
    runner.each(lambda host: ray_nodes.write_cluster_files(host, record, token, cluster.local),
                stopped)
    others = [host for host in stopped if host is not head]
    view = start_and_watch(cluster, settings, address, others)
    if not view:
        return {}
    runner.each(lambda host: "already running", [host for host in cluster.selected_hosts()
                                                 if host is not head and host not in others])
    stale = [host for host in cluster.selected_hosts() if host is not head
             and host not in others and not view.get(host.ip, {}).get("alive")]
    if stale and head in runner.ready:
        for host in stale:
            report.host_line(host.node, "Ray runs here but the node is not in the cluster: "
                                        "restarting it")
        runner.each(ray_nodes.stop, stale)
        rejoining = runner.each(lambda host: ray_nodes.join(host, settings, address), stale)
        view.update(ray_nodes.wait_alive(runner, head, rejoining.succeeded,
                                         settings.join_timeout))
    return view


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
        joining = runner.each(lambda host: ray_nodes.join(host, settings, address), others)
        try:
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
    runner.each(ray_nodes.stop, [host for host in hosts if host.node != head])
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


def print_cluster(cluster, view):
    """The cluster summary and how to attach a driver."""
    if not view:
        return
    rows = []
    for host in cluster.selected_hosts():
        resources = view.get(host.ip, {}).get("resources", {})
        store = int(resources.get("object_store_memory", 0)) // 2**20
        rows.append((host.node, host.ip, int(resources.get("CPU", 0)), f"{store} MiB"))
    address = ray_nodes.head_address(cluster.head, cluster.settings.port)
    report.say(f"\ncluster at {address}: {len(rows)} node(s) alive\n"
               + report.table(("node", "ip", "CPUs", "object store"), rows))
    report.say(f"\nattach a driver on the head:\n  {attach_command(cluster)}")


@task(auto_shortflags=False, help=START_HELP)
def start(c, worker_dir=None, num_workers=None, nodes=None, hosts=None, key_file=None,
          username=None, installation_directory=None):
    """Sync the worker code, start the head, join every other node, wait until all are alive.

    Nodes already running are left alone; nodes joining a running cluster get the settings
    it was started with (recorded on the head), whatever the flags and config say now.
    Prints the cluster and the command that attaches a driver on the head."""
    cluster = Cluster(c, with_head=True, worker_dir=worker_dir, num_workers=num_workers,
                      **common(nodes, hosts, key_file, username, installation_directory))
    with user_errors():
        bundle = worker_code.pack(cluster.settings.worker_dir)
    with cluster.runner as runner:
        cluster.stop_here("start")
        with user_errors():
            cluster.settings = joining_settings(cluster)
        ownership.check(runner, cluster.selected_hosts())
        check_ready_to_start(cluster)
        ownership.claim_after_preflight(cluster, cluster.selected_hosts(), "start")
        view = start_cluster(cluster, cluster.settings, bundle)
        print_cluster(cluster, view)
        runner.finish("start")


@task(auto_shortflags=False, help=COMMON_HELP)
def stop(c, nodes=None, hosts=None, key_file=None, username=None, installation_directory=None):
    """Stop this cluster's Ray processes on every node, workers first, then the head.

    Only processes started by ray-tasks for this installation directory are touched; other
    Ray instances on the same machines keep running. Nothing running is not an error."""
    cluster = Cluster(c, probe=False,
                      **common(nodes, hosts, key_file, username, installation_directory))
    with cluster.runner as runner:
        stop_cluster(cluster, runner.ready)
        runner.finish("stop")


@task(auto_shortflags=False, help={**START_HELP,
            "num-workers": "New worker count per node: the worker nodes rejoin with it (the "
                           "head keeps its own).",
            "force": "Replace workers even while they run tasks (Ray retries those tasks)."})
def restart_workers(c, worker_dir=None, num_workers=None, force=False, nodes=None, hosts=None,
                    key_file=None, username=None, installation_directory=None):
    """Load new worker code: sync it and replace the worker processes on every node.

    The head's GCS keeps running, so the cluster address and drivers stay. Refuses while
    tasks are running, unless --force."""
    cluster = Cluster(c, with_head=True, worker_dir=worker_dir,
                      **common(nodes, hosts, key_file, username, installation_directory))
    with user_errors():
        bundle = worker_code.pack(cluster.settings.worker_dir)
        if num_workers is not None:
            num_workers = config.whole_number("num_workers", num_workers)
    with cluster.runner as runner:
        cluster.stop_here("restart-workers")
        ownership.check(runner, cluster.selected_hosts())
        head = cluster.head
        if not head.state.gcs:
            runner.fail(head, "the cluster is not running: use inv start")
        for host in cluster.selected_hosts():
            if host.facts.busy and not force:
                runner.fail(host, f"tasks are running ({', '.join(host.facts.busy)}): wait "
                            "for them, or use --force")
        ownership.claim_after_preflight(cluster, cluster.selected_hosts(), "restart-workers")
        targets = sync_code(cluster, bundle, cluster.selected_hosts())
        record = head.facts.cluster or {}
        if num_workers and num_workers != record.get("num_workers"):
            settings = config.replace(cluster.settings, num_workers=num_workers)
            rejoin = [host for host in targets if host is not head]
            stop_cluster(cluster, rejoin)
            address = ray_nodes.head_address(head, settings.port)
            runner.each(lambda host: ray_nodes.join(host, settings, address), rejoin)
            runner.each(lambda host: ray_nodes.replace_workers(host, force),
                        [host for host in targets if host is head])
            new_record = dict(record, num_workers=settings.num_workers)
            token = cluster.token
            runner.each(lambda host: ray_nodes.write_cluster_files(
                host, new_record, token, cluster.local), targets)
        else:
            runner.each(lambda host: ray_nodes.replace_workers(host, force), targets)
        ray_nodes.wait_alive(runner, head, [host for host in targets if host in runner.ready],
                             cluster.settings.join_timeout)
        runner.finish("restart-workers")
