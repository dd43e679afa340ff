"""A mixed fleet on two namespaced hosts: one node's nodes.txt line gives it 1 CPU and a
custom resource, the other says nothing and Ray counts the machine's CPUs (no num_workers
anywhere). Checked through a driver's ray.nodes(), then as start and status show it."""

import os
import re

import pytest

from conftest import namespaced_cluster, run_inv, user_env
from host_state import node_resources, ray_processes

TAG = (os.getpid() + 71) % 10000


@pytest.fixture(scope="module")
def fleet():
    with namespaced_cluster(2, tag=TAG) as cluster:
        head, other = cluster.hosts
        env = user_env(cluster, [f"{head.ip}  cpus=1 resource.ssd=2  # the head",
                                 f"{other.ip}  # Ray counts its CPUs"])
        del env["INVOKE_RAY_NUM_WORKERS"]  # unset: Ray decides
        try:
            yield cluster, env
        finally:
            run_inv("stop", env=env)


def table_row(output, ip):
    """(CPUs, GPUs, memory, object store, custom resources) of ``ip`` in the last resource
    table of ``output``."""
    rows = re.findall(rf"^{re.escape(ip)}\s+{re.escape(ip)}\s+(\S+)\s+(\S+)\s+"
                      r"([\d.]+ [GM]iB)\s+([\d.]+ [GM]iB)\s+(\S+)$", output, re.M)
    assert rows, output
    return rows[-1]


def test_each_node_starts_with_its_own_resources(fleet):
    cluster, env = fleet
    head, other = cluster.hosts
    started = run_inv("install", "start", env=env)
    assert started.returncode == 0, started.output
    cpus = int(cluster.ssh(other, "python3 -c 'import os; print(os.cpu_count())'").stdout)
    seen = node_resources(cluster)
    assert (seen[head.ip]["CPU"], seen[head.ip]["ssd"]) == (1, 2), seen
    assert seen[other.ip]["CPU"] == cpus and "ssd" not in seen[other.ip], seen
    cells = table_row(started.output, head.ip)
    assert (cells[:2], cells[3:]) == (("1", "0"), ("100 MiB", "ssd=2"))
    assert table_row(started.output, other.ip)[0] == str(cpus)


def test_status_shows_what_ray_reports_of_each_node(fleet):
    cluster, env = fleet
    head, other = cluster.hosts
    status = run_inv("status", env=env)
    assert status.returncode == 0, status.output
    table = status.output.split("resources (as Ray reports them, from the head):")[1]
    cells = table_row(table, head.ip)
    assert (cells[:2], cells[3:]) == (("1", "0"), ("100 MiB", "ssd=2"))
    cpus = node_resources(cluster)[other.ip]["CPU"]
    assert table_row(table, other.ip)[0] == f"{cpus:g}"
    assert table_row(table, other.ip)[4] == "-"


def test_stop_leaves_no_ray(fleet):
    cluster, env = fleet
    stopped = run_inv("stop", env=env)
    assert stopped.returncode == 0, stopped.output
    assert all(ray_processes(cluster, host) == [] for host in cluster.hosts)
