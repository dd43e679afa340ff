"""The network check and two clusters side by side, on two namespaced hosts over real SSH
running real Ray: a firewall rule in the head's namespace dropping the worker's connections
to the GCS port makes start fail in seconds naming the pair (and check-network print it);
then a second cluster (its own installation directory, port and token) runs beside the
first, both pass inv test, and updating or stopping one leaves the other running."""

import os
import subprocess

import pytest

from conftest import namespaced_cluster, run_inv, user_env
from host_state import ray_processes

TAG = (os.getpid() + 83) % 10000
SECOND_HOME = "/root/ray2"
SECOND_PORT = "8379"  # the default port 6379 plus ray_ports.BLOCK
FIREWALL = "ray_tasks_test"


@pytest.fixture(scope="module")
def hosts():
    """Two hosts with Ray installed in both installation directories; each cluster's
    environment (the second: its own directory, port and token file)."""
    with namespaced_cluster(2, tag=TAG) as cluster:
        first = user_env(cluster, [host.ip for host in cluster.hosts])
        second = dict(first, INVOKE_RAY_INSTALLATION_DIRECTORY=SECOND_HOME,
                      INVOKE_RAY_PORT=SECOND_PORT,
                      INVOKE_RAY_AUTH_TOKEN_FILE=os.path.join(cluster.base, "auth_token2"))
        try:
            for env in (first, second):
                installed = run_inv("install", env=env)
                assert installed.returncode == 0, installed.output
            yield cluster, first, second
        finally:
            for env in (first, second):
                run_inv("stop", env=env)


def firewall(host, *rule):
    subprocess.run(["ip", "netns", "exec", host.namespace, "nft", *rule], check=True)


def test_a_blocked_gcs_port_fails_start_in_seconds_naming_the_pair(hosts):
    cluster, first, _ = hosts
    head, worker = cluster.hosts
    blocked = f"{worker.ip} → {head.ip} GCS {head.ip}:6379 timed out"
    firewall(head, "add", "table", "inet", FIREWALL)
    try:
        firewall(head, "add", "chain", "inet", FIREWALL, "input",
                 "{ type filter hook input priority 0 ; }")
        firewall(head, "add", "rule", "inet", FIREWALL, "input", "ip", "saddr", worker.ip,
                 "tcp", "dport", "6379", "drop")
        started = run_inv("start", env=first)
        checked = run_inv("check-network", env=first)
    finally:
        firewall(head, "delete", "table", "inet", FIREWALL)
    assert started.returncode == 1, started.output
    assert blocked in started.output
    assert f"start failed on 1 of 2 nodes: {worker.ip}" in started.output
    # Failed in the preflight, before any `ray start` (a join would wait out join_timeout):
    assert not any(ray_processes(cluster, host) for host in cluster.hosts)
    assert checked.returncode == 1 and blocked in checked.output, checked.output
    assert f"check-network failed on 1 of 2 nodes: {worker.ip}" in checked.output
    clear = run_inv("check-network", env=first)
    assert clear.returncode == 0 and "network ok" in clear.output, clear.output


def listening(cluster, host):
    """The TCP ports listened on at ``host``."""
    lines = cluster.ssh(host, "ss -ltnH").stdout.splitlines()
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in lines}


def gcs_process(cluster, host, home):
    """The ps line of the GCS of the cluster installed in ``home`` on ``host``."""
    found = [line for line in ray_processes(cluster, host)
             if "gcs_server" in line and home in line]
    assert len(found) == 1, found
    return found[0]


def cluster_test(env):
    result = run_inv("test", env=env)
    return result.returncode, result.output


def test_two_clusters_run_side_by_side_and_stop_apart(hosts):
    cluster, first, second = hosts
    head = cluster.hosts[0]
    for env in (first, second):
        started = run_inv("start", env=env)
        assert started.returncode == 0, started.output
    ports = listening(cluster, head)
    assert {6379, 6380, 6381, 8265, 8379, 8380, 8381, 10265} <= ports, sorted(ports)
    for env in (first, second):
        code, output = cluster_test(env)
        assert code == 0, output
    checked = run_inv("check-network", env=second)
    assert checked.returncode == 0 and "network ok" in checked.output, checked.output

    first_gcs = gcs_process(cluster, head, "/root/ray/")
    updated = run_inv("update", "--version=2.59.0", env=second)
    assert updated.returncode == 0, updated.output
    assert gcs_process(cluster, head, "/root/ray/") == first_gcs
    stopped = run_inv("stop", env=second)
    assert stopped.returncode == 0, stopped.output
    assert not [line for line in ray_processes(cluster, head) if SECOND_HOME in line]
    assert 8379 not in listening(cluster, head)
    code, output = cluster_test(first)
    assert code == 0, output


def test_a_cluster_whose_ports_overlap_a_running_one_is_named(hosts):
    cluster, first, second = hosts
    overlapping = dict(second, INVOKE_RAY_PORT="6479")
    checked = run_inv("check-network", env=overlapping)
    assert checked.returncode == 1, checked.output
    assert ("FAILED: the cluster in /root/ray runs here: ports 6479-8265 would be shared by "
            "this cluster (port 6479) and the one at port 6379: set ray.port at least 2000 "
            "apart") in checked.output
