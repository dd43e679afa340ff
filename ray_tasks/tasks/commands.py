"""The exec task: one shell command on every node."""

from invoke import task

from .. import dry_run as dry, ray_commands, report
from ..cluster import Cluster
from ..hosts import StepError
from .options import COMMON_HELP, DRY_RUN_HELP, common


def run_command(host, command, outputs):
    """Run the operator's command in the installation directory, the setup-env.sh that
    ray-tasks wrote sourced; what it printed goes into ``outputs`` under the host."""
    prefix = ray_commands.enter_cluster_env(host.settings.installation_directory)
    result = host.run(prefix + command, "run the command", check=False)
    outputs[host.node] = result.stdout + result.stderr
    if result.exited != 0:
        raise StepError(f"exit {result.exited}")


@task(auto_shortflags=False,
      help={**COMMON_HELP, **DRY_RUN_HELP,
            "command": "The shell command to run on each node."})
def exec_(c, command, nodes=None, hosts=None, key_file=None, username=None,
          installation_directory=None, json=False, verbose=False, dry_run=False):
    """Run a shell command on every node, output prefixed with the host.

    It runs in the installation directory with setup-env.sh sourced, so `ray status` or
    `python -c 'import ray'` use the cluster's Ray. Identical output from several nodes is
    printed once, their names folded into ranges (10.0.0.[1-32])."""
    cluster = Cluster(c, probe=False, dry_run=dry_run or None,
                      **common(nodes, hosts, key_file, username, installation_directory,
                               json, verbose))
    with cluster.runner as runner:
        if cluster.settings.dry_run:
            return dry.finish(cluster, "exec", {host: [f"run: {command}"] for host in runner.ready},
                              command)
        outputs = {}
        runner.each(lambda host: run_command(host, command, outputs))
        outputs = {host.node: outputs[host.node] for host in runner.hosts
                   if host.node in outputs}
        report.grouped_output(outputs)
        runner.finish("exec", command, details={"outputs": {
            str(node): output for node, output in outputs.items()}})
