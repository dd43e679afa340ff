"""Moving a cluster to another Ray release as one step: the target release, the settings to
start it again with, then build (beside the running venvs), switch or roll back, restart."""

from . import cluster_lifecycle, config, installing, report
from .hosts import StepError
from .user_errors import user_error, user_errors
from .cluster_tests import cluster_test, run_selftest


def check_every_node(cluster):
    """End the task unless it acts on every node (a cluster runs one Ray version)."""
    if cluster.settings.hosts:
        user_error("update acts on every node (a cluster runs one Ray version): unset "
                   f"ray.hosts ({cluster.settings.hosts!r}, from INVOKE_RAY_HOSTS, a YAML file "
                   "or an earlier task's --hosts)")


def update_target(cluster, version):
    """The release update moves to: ``version`` (already checked), else the newest on the
    index; ``cluster.settings`` and its runner's take it."""
    if not version:
        try:
            version = installing.newest_version(cluster.head.facts.python)
        except StepError as error:
            user_error(error.message)
        report.say(f"update: newest Ray release on the index is {version}")
    with user_errors():
        cluster.settings = config.replace(cluster.settings, version=version)
    cluster.runner.settings = cluster.settings
    return cluster.settings.version


def all_up_to_date(cluster, hosts):
    """Whether every host already runs the target release (then each says so)."""
    runner, settings = cluster.runner, cluster.settings
    if not all(installing.up_to_date(host, settings) for host in hosts):
        return False
    for host in hosts:
        runner.note(host, f"up to date (ray {settings.version})")
    report.say(f"update: every node already runs ray {settings.version}; nothing to do")
    return True


def restart_settings(cluster):
    """The settings the running cluster was started with (cluster.json on the head),
    checked before anything is stopped; None without a record."""
    record = cluster.head.facts.cluster
    if not record:
        return None
    with user_errors():
        return record.settings(cluster.settings)


def build(cluster, needed):
    """Build the new venvs on ``needed``; the task ends, nothing switched, unless every one
    was built."""
    built = installing.prepare_venvs(cluster.runner, cluster.settings, needed)
    if len(built) < len(needed):
        report.say("update: not every node could build the new venv; nothing was switched")
        cluster.runner.finish("update")


def switch_or_roll_back(cluster, needed):
    """Switch ``needed`` to their new venvs; if any cannot, switch the others back."""
    runner = cluster.runner
    switching = runner.each(installing.switch_venv, needed)
    if switching.failed:
        report.say("update: not every node could switch; switching the others back")
        runner.each(installing.switch_back, switching.succeeded)
    runner.each(installing.ship_scripts)


def restart(cluster, hosts, running, settings):
    """Start the cluster again with ``settings`` if it was ``running`` (and recorded), then,
    when every one of ``hosts`` is still fine, self-test the nodes and test the cluster."""
    runner = cluster.runner
    if running and settings:
        cluster_lifecycle.start_cluster(cluster, settings)
    if len(runner.ready) == len(hosts):
        runner.each(lambda host: run_selftest(host, cluster.settings.version))
        if running:
            cluster_test(cluster)
