"""Tasks that put Ray on the nodes: install, selftest, update."""

from invoke import call, task

from .. import cluster_lifecycle, dry_run as dry, installing, ownership, report, updating
from ..cluster import Cluster
from ..user_errors import user_error
from ..cluster_tests import recorded_selftest, run_selftest
from .options import COMMON_HELP, DRY_RUN_HELP, ask_sudo_password, common, setting_help

WHEELHOUSE_HELP = setting_help("wheelhouse", "Download the wheels here once and push them; "
                                             "nodes install offline.")


@task(auto_shortflags=False,
      help={**COMMON_HELP, "recorded": "A node whose venv passed the self-test before says "
                                       "when, instead of running it again (install's hook "
                                       "does this)."})
def selftest(c, recorded=False, nodes=None, hosts=None, key_file=None, username=None,
             installation_directory=None, json=False, verbose=False):
    """Run the node self-test (runtest.py) on every node.

    Ray imports at the configured version, and a throwaway local Ray, in a private temp
    directory, runs a task and round-trips an object: a running cluster is not touched.
    The venv records when it passed."""
    cluster = Cluster(c, **common(nodes, hosts, key_file, username, installation_directory,
                                  json, verbose))
    with cluster.runner as runner:
        if cluster.settings.dry_run:  # install's hook: nothing was installed
            report.say("selftest: dry run, runtest.py not run")
            return
        version = cluster.settings.version
        runner.each(lambda host: recorded and recorded_selftest(host, version)
                    or run_selftest(host, version))
        runner.finish("selftest")


@task(
    auto_shortflags=False,
    help={**COMMON_HELP, **DRY_RUN_HELP,
          "version": setting_help("version", "Ray release to install."),
          "wheelhouse": WHEELHOUSE_HELP,
          "prompt-for-sudo-password": "Ask once for the nodes' sudo password, for steps that "
                                      "need root (never echoed, logged or put on a command "
                                      "line)."},
    post=[call(selftest, recorded=True)],
)
def install(c, version=None, wheelhouse=False, prompt_for_sudo_password=False, nodes=None,
            hosts=None, key_file=None, username=None, installation_directory=None,
            json=False, verbose=False, dry_run=False):
    """Install Ray on every node in its own venv (built by uv, else pip), then run the node
    self-test.

    Idempotent: a node whose venv already holds that release with the configured extras
    says "up to date" and is left alone, and the self-test it passed there is reported, not
    run again. Every node's Python must match the head's (Ray refuses a node whose Python
    differs): the head is probed for it even when --hosts leaves it out, and then left
    alone. Where a Python lacks venv support, its OS package is
    installed as root (apt-get; through sudo when the SSH user is not root)."""
    sudo_password = ask_sudo_password() if prompt_for_sudo_password else None
    cluster = Cluster(c, with_head=True, version=version, wheelhouse=wheelhouse or None,
                      dry_run=dry_run or None,
                      **common(nodes, hosts, key_file, username, installation_directory,
                               json, verbose))
    settings = cluster.settings
    with cluster.runner as runner:
        cluster.stop_here("install")
        installing.check_pythons(runner, cluster.head)
        ownership.check(runner, cluster.selected_hosts())
        installing.check_home_length(runner)
        if not cluster.head_selected():
            runner.note(cluster.head, "head: its Python checked only")
        installing.check_not_running(runner, cluster.selected_hosts(), settings)
        needed = [host for host in cluster.selected_hosts()
                  if not installing.up_to_date(host, settings)]
        installing.check_disk(runner, needed)
        if settings.dry_run:
            return dry.finish(cluster, "install", {host: dry.venv_plan(host, settings)
                                                   for host in cluster.selected_hosts()})
        ownership.claim_after_preflight(cluster, cluster.selected_hosts(), "install")
        installing.say_up_to_date(runner, cluster.selected_hosts(), needed, settings)
        installing.install_venvs(runner, settings, needed, sudo_password)
        runner.each(installing.ship_scripts, cluster.selected_hosts())
        runner.finish("install")


@task(auto_shortflags=False, help={**COMMON_HELP, **DRY_RUN_HELP,
            "version": "Ray release to move to (default: the newest on the index).",
            "wheelhouse": WHEELHOUSE_HELP})
def update(c, version=None, wheelhouse=False, nodes=None, hosts=None, key_file=None,
           username=None, installation_directory=None, json=False, verbose=False,
           dry_run=False):
    """Move every node to another Ray release as one step.

    The new venvs are built beside the old ones while the cluster keeps running; then Ray
    is stopped, every node switched, the cluster started again with the settings it had,
    and tested. If any node cannot build or switch, every node stays on the old release."""
    if hosts:
        user_error("update acts on every node (a cluster runs one Ray version): drop --hosts")
    cluster = Cluster(c, version=version, wheelhouse=wheelhouse or None, dry_run=dry_run or None,
                      **common(nodes, hosts, key_file, username, installation_directory,
                               json, verbose))
    updating.check_every_node(cluster)
    with cluster.runner as runner:
        cluster.stop_here("update")
        installing.check_pythons(runner, cluster.head)
        cluster.stop_here("update")
        c.config.ray.version = updating.update_target(cluster, version)
        hosts = runner.ready
        if updating.all_up_to_date(cluster, hosts):
            runner.finish("update")
            return
        restart = updating.restart_settings(cluster)
        running = [host for host in hosts if host.state.raylet]
        needed = [host for host in hosts if not installing.up_to_date(host, cluster.settings)]
        installing.check_disk(runner, needed)
        ownership.check(runner, hosts)
        if cluster.settings.dry_run:
            return dry.finish(cluster, "update", dry.update_plan(cluster, hosts, running))
        ownership.claim_after_preflight(cluster, hosts, "update")
        updating.build(cluster, needed)
        if running:
            cluster_lifecycle.stop_cluster(cluster, hosts)
        updating.switch_or_roll_back(cluster, needed)
        updating.restart(cluster, hosts, running, restart)
        runner.finish("update")
