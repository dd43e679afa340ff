"""Verifying nodes and the cluster: the node self-test and the whole-cluster test."""

import posixpath

from . import ray_commands, ray_nodes, shell
from .hosts import StepError


def run_selftest(host, expected_version):
    """runtest.py on one node, in its venv."""
    python = posixpath.join(ray_commands.venv_link(host.home), "bin", "python")
    result = host.run(shell.join(python, ray_commands.state_path(host.home, "runtest.py"),
                                 expected_version), "run runtest.py", check=False)
    if result.exited != 0:
        raise StepError.from_result("self-test failed", result)
    return f"self-test ok (ray {expected_version})"


def cluster_test(cluster):
    """The whole-cluster test, run as a driver on the head; failures go to their nodes."""
    runner, head = cluster.runner, cluster.head
    hosts = cluster.selected_hosts()
    if not head.state.gcs:
        runner.fail(head, "the cluster is not running: use inv start")
        return {}
    try:
        verdict = ray_nodes.driver(head, "cluster_check.py", "test",
                                   ",".join(host.ip for host in hosts), timeout=300)
    except StepError as error:
        runner.fail(head, error.message, error.output)
        return {}
    for host in hosts:
        errors = verdict["nodes"][host.ip]["errors"]
        if errors:
            runner.fail(host, "; ".join(errors))
        else:
            runner.note(host, "node and cluster tests ok")
    return verdict["nodes"]
