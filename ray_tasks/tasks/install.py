"""Tasks that put Ray on the nodes: install, selftest, update."""

from invoke import task

from .. import config, installing, ownership, report
from ..hosts import StepError
from ..verify import cluster_test, run_selftest
from .lifecycle import start_cluster, stop_cluster
from .options import COMMON_HELP, Cluster, ask_sudo_password, common, user_error, user_errors


@task(auto_shortflags=False, help=COMMON_HELP)
def selftest(c, nodes=None, hosts=None, key_file=None, username=None,
             installation_directory=None):
    """Run the node self-test (runtest.py) on every node.

    Ray imports at the configured version, and a throwaway local Ray, in a private temp
    directory, runs a task and round-trips an object: a running cluster is not touched."""
    cluster = Cluster(c, **common(nodes, hosts, key_file, username, installation_directory))
    with cluster.runner as runner:
        runner.each(lambda host: run_selftest(host, cluster.settings.version))
        runner.finish("selftest")


def prepare_venvs(cluster, hosts):
    """Wheelhouse push (if on) and venv build on ``hosts``; returns those that succeeded."""
    runner, settings = cluster.runner, cluster.settings
    if hosts and settings.wheelhouse:
        hosts = installing.push_wheels(runner, settings, hosts, [settings.requirement],
                                       settings.requirement)
    return runner.each(lambda host: installing.build_venv(host, settings), hosts).succeeded


@task(
    auto_shortflags=False,
    help={**COMMON_HELP,
          "version": "Ray release to install (ray.version).",
          "wheelhouse": "Download the wheels here once and push them; nodes install offline.",
          "prompt-for-sudo-password": "Ask once for the nodes' sudo password, for steps that "
                                      "need root (never echoed, logged or put on a command "
                                      "line)."},
    post=[selftest],
)
def install(c, version=None, wheelhouse=False, prompt_for_sudo_password=False, nodes=None,
            hosts=None, key_file=None, username=None, installation_directory=None):
    """Install Ray on every node in its own venv, then run the node self-test.

    Idempotent: a node whose venv already holds that release with the configured extras
    says "up to date" and is left alone. Every node's Python must match the head's (Ray
    refuses a node whose Python differs): the head is probed for it even when --hosts leaves
    it out, and then left alone. Where a Python lacks venv support, its OS package is
    installed as root (apt-get; through sudo when the SSH user is not root)."""
    sudo_password = ask_sudo_password() if prompt_for_sudo_password else None
    cluster = Cluster(c, with_head=True, version=version, wheelhouse=wheelhouse or None,
                      **common(nodes, hosts, key_file, username, installation_directory))
    settings = cluster.settings
    with cluster.runner as runner:
        cluster.stop_here("install")
        installing.check_pythons(runner, cluster.head)
        ownership.check(runner, cluster.selected_hosts())
        installing.check_home_length(runner)
        if not cluster.head_selected():
            runner.note(cluster.head, "head: its Python checked only")
        for host in cluster.selected_hosts():
            if host.state.raylet and not installing.up_to_date(host, settings):
                running = host.facts.ray or "(of an incomplete installation)"
                runner.fail(host, f"Ray {running} is running here: inv stop first, or use inv "
                            f"update --version={settings.version} to move a running cluster")
        needed = [host for host in cluster.selected_hosts()
                  if not installing.up_to_date(host, settings)]
        installing.check_disk(runner, needed)
        ownership.claim_after_preflight(cluster, cluster.selected_hosts(), "install")
        for host in cluster.selected_hosts():
            if host not in needed:
                report.host_line(host.node, f"up to date (ray {settings.version})")
                runner.note(host, "up to date")
        lacking = [host for host in needed if not host.facts.venv_support]
        runner.each(lambda host: installing.add_venv_support(host, sudo_password), lacking)
        built = prepare_venvs(cluster, needed)
        runner.each(installing.switch_venv, built)
        runner.each(installing.ship_scripts, cluster.selected_hosts())
        runner.finish("install")


def update_target(cluster, version):
    """The release update moves to: ``version`` (already checked), else the newest on the
    index; ``cluster.settings`` take it."""
    if not version:
        try:
            version = installing.newest_version(cluster.head.facts.python)
        except StepError as error:
            user_error(error.message)
        report.say(f"update: newest Ray release on the index is {version}")
    with user_errors():
        cluster.settings = config.replace(cluster.settings, version=version)
    return cluster.settings.version


def restart_settings(cluster):
    """The settings the running cluster was started with (cluster.json on the head),
    checked before anything is stopped; None without a record."""
    record = cluster.head.facts.cluster
    if not record:
        return None
    with user_errors():
        return config.replace(
            cluster.settings, num_workers=record["num_workers"], port=record["port"],
            object_store_memory=record["object_store_memory"], start_args=record["start_args"])


@task(auto_shortflags=False, help={**COMMON_HELP,
            "version": "Ray release to move to (default: the newest on the index).",
            "wheelhouse": "Download the wheels here once and push them; nodes install offline."})
def update(c, version=None, wheelhouse=False, nodes=None, hosts=None, key_file=None,
           username=None, installation_directory=None):
    """Move every node to another Ray release as one step.

    The new venvs are built beside the old ones while the cluster keeps running; then Ray
    is stopped, every node switched, the cluster started again with the settings it had,
    and tested. If any node cannot build or switch, every node stays on the old release."""
    if hosts:
        user_error("update acts on every node (a cluster runs one Ray version): drop --hosts")
    cluster = Cluster(c, version=version, wheelhouse=wheelhouse or None,
                      **common(nodes, hosts, key_file, username, installation_directory))
    if cluster.settings.hosts:
        user_error("update acts on every node (a cluster runs one Ray version): unset "
                   f"ray.hosts ({cluster.settings.hosts!r}, from INVOKE_RAY_HOSTS, a YAML file "
                   "or an earlier task's --hosts)")
    with cluster.runner as runner:
        cluster.stop_here("update")
        installing.check_pythons(runner, cluster.head)
        cluster.stop_here("update")
        version = c.config.ray.version = update_target(cluster, version)
        runner.settings = cluster.settings
        hosts = runner.ready
        if all(installing.up_to_date(host, cluster.settings) for host in hosts):
            for host in hosts:
                runner.note(host, f"up to date (ray {version})")
            report.say(f"update: every node already runs ray {version}; nothing to do")
            runner.finish("update")
            return
        restart = restart_settings(cluster)
        running = [host for host in hosts if host.state.raylet]
        needed = [host for host in hosts if not installing.up_to_date(host, cluster.settings)]
        installing.check_disk(runner, needed)
        ownership.check(runner, hosts)
        ownership.claim_after_preflight(cluster, hosts, "update")
        if len(prepare_venvs(cluster, needed)) < len(needed):
            report.say("update: not every node could build the new venv; nothing was switched")
            runner.finish("update")
        if running:
            stop_cluster(cluster, hosts)
        switching = runner.each(installing.switch_venv, needed)
        if switching.failed:
            report.say("update: not every node could switch; switching the others back")
            runner.each(installing.switch_back, switching.succeeded)
        runner.each(installing.ship_scripts)
        if running and restart:
            start_cluster(cluster, restart)
        if len(runner.ready) == len(hosts):
            runner.each(lambda host: run_selftest(host, version))
            if running:
                cluster_test(cluster)
        runner.finish("update")
