"""The tests ray-tasks runs from the controller: each node's self-test (runtest.py, in its
venv) and the whole-cluster test (node_scripts/cluster_check.py, as a driver on the head)."""

import posixpath

from . import ray_commands, ray_nodes, shell
from .hosts import StepError


def run_selftest(host, expected_version):
    """runtest.py on one node, in its venv; the venv records when it passed (and forgets an
    earlier pass first)."""
    python = posixpath.join(ray_commands.venv_link(host.home), "bin", "python")
    test = shell.join(python, ray_commands.state_path(host.home, "runtest.py"),
                      expected_version)
    result = host.run(ray_commands.recording_selftest(host.home, test), "run runtest.py",
                      check=False)
    if result.exited != 0:
        raise StepError.from_result("self-test failed", result)
    return f"self-test ok (ray {expected_version})"


def recorded_selftest(host, expected_version):
    """The self-test the node's current venv passed before, as the node's message (None
    when it has no record, or is not at ``expected_version``). The time is given to the
    minute, so that nodes tested together share one line."""
    when = host.facts.selftest
    if not when or host.facts.ray != expected_version:
        return None
    minute = when[:16].replace("T", " ")
    return f"self-test ok (ray {expected_version}) at {minute} UTC, as recorded: not run " \
           "again (inv selftest runs it)"


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
