"""examples/my_project end to end on two namespaced hosts: its Makefile chains ray-tasks'
install and start, the project's own train task (a Fabric group of the nodes puts the data
on each, the driver runs on the head through setup-env.sh) and stop, each task once."""

import os
import re
import shutil
import sys

import pytest

from conftest import REPO, namespaced_cluster, run_inv, user_env
from host_state import ray_processes

TAG = (os.getpid() + 89) % 10000
EXAMPLE = os.path.join(REPO, "examples", "my_project")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """(the cluster, a user's environment with ray-tasks importable, the project's folder)."""
    folder = str(tmp_path_factory.mktemp("user") / "my_project")
    shutil.copytree(EXAMPLE, folder)
    with namespaced_cluster(2, tag=TAG) as cluster:
        env = user_env(cluster, [host.ip for host in cluster.hosts])
        env.update(PYTHON=sys.executable, PYTHONPATH=REPO)
        try:
            yield cluster, env, folder
        finally:
            run_inv("stop", env=env, cwd=folder)


def losses(output):
    return [float(value) for value in re.findall(r"^epoch \d+: loss ([\d.]+)$", output, re.M)]


def test_makefile_chains_install_start_train_stop_once_each(project):
    cluster, env, folder = project
    result = run_inv(command=["make", "-C", folder], env=env)
    assert result.returncode == 0, result.output
    for task in ("install", "selftest", "start", "stop"):
        ended = re.findall(rf"^{task}: 2 nodes ok in ", result.output, re.M)
        assert len(ended) == 1, (task, result.output)
    assert "trained on a cluster of 2 nodes, 4 CPUs" in result.output
    trained = losses(result.output)
    assert len(trained) == 4 and trained[-1] < trained[0] / 2, trained
    with open(os.path.join(folder, "data", "points.csv")) as handle:
        data = handle.read()
    for host in cluster.hosts:
        assert re.search(rf"^{host.name}$", result.output, re.M), (host.name, result.output)
        assert cluster.ssh(host, "cat ~/my_project_points.csv").stdout == data
        assert ray_processes(cluster, host) == []


def test_train_alone_runs_its_hooks_with_the_same_settings(project):
    cluster, env, folder = project
    env = dict(env, INVOKE_RAY_NUM_WORKERS="1")
    result = run_inv("train", "--epochs=1", env=env, cwd=folder)
    assert result.returncode == 0, result.output
    assert "up to date (ray 2.60.0)" in result.output
    assert "trained on a cluster of 2 nodes, 2 CPUs" in result.output
    assert len(losses(result.output)) == 2
    assert all(ray_processes(cluster, host) == [] for host in cluster.hosts)
