"""Faults on the namespaced cluster: a host's network goes down during `start`, a host dies
during `install`, Ctrl-C during `install`, a head restarted alone. Each: a clear error naming
the host within a bounded time, the other hosts done, nothing lost, and a rerun that
completes once the fault is gone."""

import signal
import subprocess
import time

from conftest import NEW_RAY, OLD_RAY, read_until, run_inv, start_inv
from host_state import node_path, run_driver, venv_versions


def test_network_down_during_start(netns_cluster, running):
    head, _, victim = netns_cluster.hosts
    env = dict(running, INVOKE_RAY_CONNECT_TIMEOUT="5", INVOKE_RAY_JOIN_TIMEOUT="30")
    assert run_inv("stop", env=env).returncode == 0
    started = time.monotonic()
    process = start_inv(env, "start")
    try:
        read_until(process, f"[{head.ip}] head started")
        subprocess.run(["ip", "link", "set", netns_cluster.hosts[2].veth, "down"], check=True)
        output = process.communicate(timeout=240)[0]
    finally:
        subprocess.run(["ip", "link", "set", victim.veth, "up"], check=True)
    assert process.returncode == 1, output
    assert time.monotonic() - started < 180, "a dead host must cost a bounded time"
    assert f"start failed on 1 of 3 nodes: {victim.ip}" in output
    assert "Traceback" not in output

    rerun = run_inv("start", env=env)
    assert rerun.returncode == 0, rerun.output
    seen = run_driver(netns_cluster, "greetings", "VERSION")
    assert set(seen) == {host.name for host in netns_cluster.hosts}


def install_old_until_building(netns_cluster, env, host):
    """Stop the cluster, start `inv install` of OLD_RAY from scratch, and return the running
    process once ``host`` is building its venv."""
    assert run_inv("stop", env=env).returncode == 0
    for each in netns_cluster.hosts:
        netns_cluster.ssh(each, f"rm -rf {node_path('venvs')}/ray-{OLD_RAY}-*")
    process = start_inv(env, "install", f"--version={OLD_RAY}")
    read_until(process, "wheelhouse:")
    deadline = time.monotonic() + 120
    while netns_cluster.ssh(host, f"ls -d {node_path('venvs')}/ray-{OLD_RAY}*/lib").returncode:
        assert time.monotonic() < deadline, "the new venv never appeared"
        time.sleep(0.2)
    return process


def rerun_completes_then_back_to_new(netns_cluster, env):
    """The fault gone, a rerun puts every host on OLD_RAY; then all go back to NEW_RAY."""
    rerun = run_inv("install", f"--version={OLD_RAY}", env=env)
    assert rerun.returncode == 0, rerun.output
    assert venv_versions(netns_cluster) == {host.name: OLD_RAY for host in netns_cluster.hosts}
    back = run_inv("install", f"--version={NEW_RAY}", "start", env=env)
    assert back.returncode == 0, back.output


def test_host_dies_during_install_then_rerun_completes(netns_cluster, running):
    victim = netns_cluster.hosts[2]
    process = install_old_until_building(netns_cluster, running, victim)
    try:
        netns_cluster.stop_host(victim)
        output = process.communicate(timeout=600)[0]
    finally:
        if victim.init_pid() is None:
            netns_cluster.restart_host(victim)
    assert process.returncode == 1, output
    assert f"install failed on 1 of 3 nodes: {victim.ip}" in output
    assert "Traceback" not in output
    versions = venv_versions(netns_cluster)
    assert versions == {"h1": OLD_RAY, "h2": OLD_RAY, "h3": NEW_RAY}, \
        "the dead host keeps its old, working installation"

    rerun_completes_then_back_to_new(netns_cluster, running)


def test_ctrl_c_during_install_leaves_every_node_on_its_release(netns_cluster, running):
    process = install_old_until_building(netns_cluster, running, netns_cluster.hosts[0])
    try:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, output
    assert "interrupted: the steps under way were cut off" in output
    assert "Traceback" not in output
    assert venv_versions(netns_cluster) == {host.name: NEW_RAY for host in netns_cluster.hosts}

    rerun_completes_then_back_to_new(netns_cluster, running)


def test_head_restarted_alone_takes_its_workers_back(netns_cluster, running):
    head, *workers = netns_cluster.hosts
    assert run_inv("stop", f"--hosts={head.ip}", env=running).returncode == 0
    for worker in workers:
        assert netns_cluster.ssh(worker, "pgrep -x raylet").returncode == 0
    rerun = run_inv("start", env=running)
    assert rerun.returncode == 0, rerun.output
    for worker in workers:
        assert (f"[{worker.ip}] Ray runs here but the node is not in the cluster: restarting it"
                in rerun.output)
    seen = run_driver(netns_cluster, "greetings", "VERSION")
    assert set(seen) == {host.name for host in netns_cluster.hosts}
