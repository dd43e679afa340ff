"""Tasks that run the cluster: start, stop, restart-workers."""

from invoke import task

from .. import cluster_lifecycle, config, dry_run as dry, ownership, worker_code
from ..cluster import Cluster
from ..user_errors import user_errors
from .options import COMMON_HELP, DRY_RUN_HELP, common, setting_help

START_HELP = {
    **COMMON_HELP,
    **DRY_RUN_HELP,
    "worker-dir": setting_help("worker_dir", "Directory of worker code to sync to every "
                               "node's worker_code; its requirements.txt, if any, is "
                               "installed."),
    "num-workers": setting_help("num_workers", "Ray's --num-cpus on every node; a node's "
                                "cpus= in nodes.txt wins."),
}


@task(auto_shortflags=False, help=START_HELP)
def start(c, worker_dir=None, num_workers=None, nodes=None, hosts=None, key_file=None,
          username=None, installation_directory=None, json=False, verbose=False,
          dry_run=False):
    """Sync the worker code, start the head, join every other node, wait until all are alive.

    Nodes already running are left alone; nodes joining a running cluster get the settings
    it was started with (recorded on the head), whatever the flags and config say now.
    Prints the cluster and the command that attaches a driver on the head."""
    cluster = Cluster(c, with_head=True, worker_dir=worker_dir, num_workers=num_workers,
                      dry_run=dry_run or None,
                      **common(nodes, hosts, key_file, username, installation_directory,
                               json, verbose))
    with user_errors():
        bundle = worker_code.pack(cluster.settings.worker_dir)
    with cluster.runner as runner:
        cluster.stop_here("start")
        with user_errors():
            cluster.settings = cluster_lifecycle.joining_settings(cluster)
        ownership.check(runner, cluster.selected_hosts())
        cluster_lifecycle.check_ready_to_start(cluster)
        cluster_lifecycle.check_network(cluster)
        if cluster.settings.dry_run:
            return dry.finish(cluster, "start", dry.start_plan(cluster, bundle))
        ownership.claim_after_preflight(cluster, cluster.selected_hosts(), "start")
        view = cluster_lifecycle.start_cluster(cluster, cluster.settings, bundle)
        cluster_lifecycle.print_cluster(cluster, view)
        runner.finish("start")


@task(auto_shortflags=False, help={**COMMON_HELP, **DRY_RUN_HELP})
def stop(c, nodes=None, hosts=None, key_file=None, username=None, installation_directory=None,
         json=False, verbose=False, dry_run=False):
    """Stop this cluster's Ray processes on every node, workers first, then the head.

    Only processes started by ray-tasks for this installation directory are touched; other
    Ray instances on the same machines keep running. Nothing running is not an error."""
    cluster = Cluster(c, probe=None, dry_run=dry_run or None,
                      **common(nodes, hosts, key_file, username, installation_directory,
                               json, verbose))
    with cluster.runner as runner:
        if cluster.settings.dry_run:
            return dry.finish(cluster, "stop", {host: dry.stop_plan(host)
                                                for host in runner.ready})
        cluster_lifecycle.stop_cluster(cluster, runner.ready)
        runner.finish("stop")


RESTART_HELP = {
    **START_HELP,
    "num-workers": "New worker count per node: the worker nodes rejoin with it (the head "
                   "keeps its own; a node's cpus= in nodes.txt wins).",
    "force": "Replace workers even while they run tasks (Ray retries those tasks); with "
             "--rolling, only those still running after the drain timeout.",
    "rolling": "One node at a time, in nodes-file order, while the cluster keeps working: "
               "each worker node is drained through Ray (no new tasks; running ones "
               "finish), then rejoins; the head's workers are replaced last, each once idle.",
    "drain-timeout": setting_help("drain_timeout", "With --rolling: seconds a node may take "
                                  "to finish its tasks once drained."),
}


@task(auto_shortflags=False, help=RESTART_HELP)
def restart_workers(c, worker_dir=None, num_workers=None, force=False, rolling=False,
                    drain_timeout=None, nodes=None, hosts=None, key_file=None, username=None,
                    installation_directory=None, json=False, verbose=False, dry_run=False):
    """Load new worker code: sync it and replace the worker processes on every node.

    The head's GCS keeps running, so the cluster address and drivers stay. Refuses while
    tasks are running, unless --force; --rolling replaces them node by node instead, the
    tasks running on."""
    cluster = Cluster(c, with_head=True, worker_dir=worker_dir, dry_run=dry_run or None,
                      drain_timeout=drain_timeout,
                      **common(nodes, hosts, key_file, username, installation_directory,
                               json, verbose))
    with user_errors():
        bundle = worker_code.pack(cluster.settings.worker_dir)
        num_workers = restart_worker_count(num_workers, rolling)
    with cluster.runner as runner:
        cluster.stop_here("restart-workers")
        ownership.check(runner, cluster.selected_hosts())
        cluster_lifecycle.check_restartable(cluster, force, rolling)
        if cluster.settings.dry_run:
            return dry.finish(cluster, "restart-workers",
                              dry.restart_plan(cluster, bundle, num_workers, rolling))
        ownership.claim_after_preflight(cluster, cluster.selected_hosts(), "restart-workers")
        cluster_lifecycle.restart_workers(cluster, bundle, num_workers, force, rolling)
        runner.finish("restart-workers")


def restart_worker_count(num_workers, rolling):
    """The checked --num-workers of restart-workers (None when not given); a ConfigError
    with --rolling, which keeps each node's count."""
    if num_workers is None:
        return None
    if rolling:
        raise config.ConfigError("--rolling keeps the worker count: change it with "
                                 "restart-workers --num-workers, without --rolling")
    return config.whole_number("num_workers", num_workers)
