"""Fixes of the review, on a real `inv`: the dashboard's local port, install's Python check
against an unselected head, a node joining a running cluster with its recorded settings,
and Ctrl-C while a node joins (nothing runs on a host after it). Two namespaced hosts."""

import os
import shlex
import signal
import socket
import time

import pytest

from conftest import namespaced_cluster, read_until, run_inv, start_inv, user_env
from host_state import run_driver, venv_versions

TAG = (os.getpid() + 53) % 10000
NEW_RAY = "2.60.0"
FAKE_PYTHON = """#!/bin/sh
PYTHONPATH=/root/fake-python exec /usr/bin/python3 "$@"
"""


def test_dashboard_refuses_a_taken_local_port(tmp_path):
    """Another program listens on the port: a one-line error naming it and --local-port,
    before connecting anywhere (the node here would refuse the connection)."""
    (tmp_path / "nodes.txt").write_text("root@127.0.0.1:1\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("INVOKE_")}
    env.update(INVOKE_RAY_NODES=str(tmp_path / "nodes.txt"),
               INVOKE_RAY_KNOWN_HOSTS=str(tmp_path / "known_hosts"))
    with socket.create_server(("127.0.0.1", 0)) as other:
        port = other.getsockname()[1]
        result = run_inv("dashboard", f"--local-port={port}", env=env, timeout=60)
    assert result.returncode == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert f"local port {port}" in lines[0] and "--local-port" in lines[0]
    bad = run_inv("dashboard", "--local-port=http", env=env, timeout=60)
    assert bad.returncode == 2 and "--local-port: 'http' is not a port" in bad.output


@pytest.fixture(scope="module")
def review():
    with namespaced_cluster(2, tag=TAG) as cluster:
        env = user_env(cluster, [host.ip for host in cluster.hosts])
        try:
            yield cluster, env
        finally:
            run_inv("stop", env=env)


def test_install_subset_checks_python_against_the_unselected_head(review):
    cluster, env = review
    head, worker = cluster.hosts
    for host in cluster.hosts:
        cluster.ssh(host, f"printf %s {shlex.quote(FAKE_PYTHON)} > /root/py && chmod +x /root/py")
    cluster.ssh(head, "mkdir -p /root/fake-python && echo 'import sys; "
                      "sys.version = \"3.99.0 \" + sys.version.split(\" \", 1)[1]' "
                      "> /root/fake-python/sitecustomize.py")
    result = run_inv("install", f"--hosts={worker.ip}", env=dict(env, INVOKE_RAY_PYTHON="/root/py"))
    assert result.returncode == 1, result.output
    assert f"but 3.99.0 on {head.ip}" in result.output
    assert f"install failed on 1 of 2 nodes: {worker.ip}" in result.output


def test_install_subset_leaves_the_head_alone(review):
    cluster, env = review
    head, worker = cluster.hosts
    result = run_inv("install", f"--hosts={worker.ip}", f"--version={NEW_RAY}", env=env)
    assert result.returncode == 0, result.output
    versions = venv_versions(cluster)
    assert versions["h2"] == NEW_RAY and versions["h1"] != NEW_RAY, versions
    assert run_inv("install", f"--hosts={head.ip}", env=env).returncode == 0


def test_a_node_joining_a_running_cluster_gets_its_recorded_settings(review):
    cluster, env = review
    head, worker = cluster.hosts
    first = run_inv("start", f"--hosts={head.ip}", env=dict(env, INVOKE_RAY_NUM_WORKERS="2"))
    assert first.returncode == 0, first.output
    joining = run_inv("start", f"--hosts={worker.ip}", env=dict(env, INVOKE_RAY_NUM_WORKERS="1"))
    assert joining.returncode == 0, joining.output
    cpus = {name: seen["cpus"] for name, seen in run_driver(cluster, "os", "sep").items()}
    assert cpus == {"h1": 2, "h2": 2}
    assert "started with num_workers=2" in joining.output


def accepted_sessions(host):
    """How many SSH logins the host's sshd has accepted so far (it logs to boot.log)."""
    with open(os.path.join(host.folder, "boot.log")) as handle:
        return handle.read().count("Accepted publickey")


def test_ctrl_c_while_a_node_joins_runs_nothing_on_a_host_after_it(review):
    cluster, env = review
    head, worker = cluster.hosts
    assert run_inv("stop", f"--hosts={worker.ip}", env=env).returncode == 0
    process = start_inv(env, "start")
    deadline = time.monotonic() + 120
    while cluster.ssh(worker, "pgrep -f '[r]ay start'").returncode != 0:
        assert time.monotonic() < deadline and process.poll() is None, "never saw the join"
    before = {host.name: accepted_sessions(host) for host in cluster.hosts}
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=30)[0]
    assert process.returncode == 130, output
    assert time.monotonic() - started < 15, "Ctrl-C did not end the start promptly"
    assert "interrupted: the steps under way were cut off" in output
    assert "Traceback" not in output
    time.sleep(5)
    after = {host.name: accepted_sessions(host) for host in cluster.hosts}
    assert after == before, "a host was logged into again after the interrupt"

    rerun = run_inv("start", env=env)
    assert rerun.returncode == 0, rerun.output
    assert set(run_driver(cluster, "os", "sep")) == {"h1", "h2"}


def test_dashboard_tunnel_closes_on_ctrl_c(review):
    """Once the tunnel is open, Ctrl-C is its normal end: "tunnel closed", exit 0."""
    cluster, env = review
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    process = start_inv(env, "dashboard", f"--local-port={port}")
    try:
        read_until(process, "dashboard of", timeout=60)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as page:
            page.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert page.recv(64).startswith(b"HTTP/1.")
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert "tunnel closed" in output and "Traceback" not in output
