"""The tests ray-tasks runs from the controller: each node's self-test (runtest.py, in its
venv) and the whole-cluster test (node_scripts/cluster_check.py, as a driver on the head)."""

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
    """The whole-cluster test, run as a driver on the head; failures go to their nodes.
    Returns the cluster view ({} when the test could not run)."""
    runner, head = cluster.runner, cluster.head
    hosts = cluster.selected_hosts()
    if not head.state.gcs:
        runner.fail(head, "the cluster is not running: use inv start")
        return {}
    try:
        view = ray_nodes.check_cluster(head, "test", hosts, timeout=300)
    except StepError as error:
        runner.fail(head, error.message, error.output)
        return {}
    for host in hosts:
        errors = view[host.ip]["errors"]
        if errors:
            runner.fail(host, "; ".join(errors))
        else:
            runner.note(host, "node and cluster tests ok")
    return view
