"""The exec task: one shell command on every node."""

import sys

from invoke import task

from .. import ray_commands, report
from ..cluster import Cluster
from ..hosts import StepError
from .options import COMMON_HELP, common


def run_command(host, command):
    """Run the operator's command in the installation directory, the setup-env.sh that
    ray-tasks wrote sourced."""
    prefix = ray_commands.enter_cluster_env(host.settings.installation_directory)
    result = host.run(prefix + command, "run the command", check=False)
    if result.exited != 0:
        raise StepError.from_result(f"exit {result.exited}", result)
    output = result.stdout + result.stderr
    if output.strip():
        report.host_output(host.node, output, stream=sys.stdout)
    return "ok"


@task(auto_shortflags=False,
      help={**COMMON_HELP, "command": "The shell command to run on each node."})
def exec_(c, command, nodes=None, hosts=None, key_file=None, username=None,
          installation_directory=None):
    """Run a shell command on every node, output prefixed with the host.

    It runs in the installation directory with setup-env.sh sourced, so `ray status` or
    `python -c 'import ray'` use the cluster's Ray."""
    cluster = Cluster(c, probe=False,
                      **common(nodes, hosts, key_file, username, installation_directory))
    with cluster.runner as runner:
        runner.each(lambda host: run_command(host, command))
        runner.finish("exec", command)
