"""Every task end to end over real SSH on three namespaced hosts running real Ray.

The scenarios share one cluster and run in order (install, start, restart-workers, update,
test, the Makefile chain, stop, failures). Each asserts on the hosts' real state, read over
SSH, not on ray-tasks' own output alone.
"""

import os
import shlex
import subprocess
import sys
import time

import pytest

from conftest import NEW_RAY, OLD_RAY, REPO, run_inv
from host_state import node_path, ray_processes, run_driver, setup_env, venv_versions
from ray_tasks import uv_on_nodes
from ray_tasks.host_ranges import fold

@pytest.fixture(scope="module")
def worker_dir(netns_cluster):
    path = os.path.join(netns_cluster.base, "worker")
    os.makedirs(path)
    set_module_value(path, "v1")
    return path


def set_module_value(worker_dir, value):
    with open(os.path.join(worker_dir, "probe_mod.py"), "w") as handle:
        handle.write(f"VALUE = {value!r}\n")


def sent_to_hosts(cluster):
    """The bytes this machine has sent so far onto the test hosts' bridge (measured by the
    kernel: the hosts' traffic between themselves is not counted)."""
    with open(f"/sys/class/net/{cluster.bridge}/statistics/tx_bytes") as handle:
        return int(handle.read())


def test_install_older_release_offline_from_wheelhouse(netns_cluster, cluster_env):
    for host in netns_cluster.hosts:
        routes = netns_cluster.ssh(host, "ip route").stdout
        assert "default" not in routes, "test hosts must have no way out"
    wheels_dir, venv = node_path("wheels"), node_path("venv")
    for host in netns_cluster.hosts:  # the session's earlier modules left wheels and venvs
        assert netns_cluster.ssh(host, f"rm -rf {wheels_dir} {node_path('venvs')}/ray-{OLD_RAY}-*"
                                       f" && {{ [ -e {venv} ] || rm -f {venv}; }}").returncode == 0
    before = sent_to_hosts(netns_cluster)
    first = run_inv("install", f"--version={OLD_RAY}", env=cluster_env)
    sent = sent_to_hosts(netns_cluster) - before
    assert first.returncode == 0, first.output
    assert venv_versions(netns_cluster) == {host.name: OLD_RAY for host in netns_cluster.hosts}
    wheels = {host.name: netns_cluster.ssh(host, f"cd {wheels_dir} && sha256sum *.whl").stdout
              for host in netns_cluster.hosts}
    assert len(set(wheels.values())) == 1, "the nodes hold different wheels"
    one_copy = int(netns_cluster.ssh(netns_cluster.hosts[0], f"cat {wheels_dir}/*.whl | wc -c")
                   .stdout)
    assert sent < 1.3 * one_copy, f"the controller sent {sent} bytes for {one_copy} of wheels"
    peers = fold(host.ip for host in netns_cluster.hosts[1:])
    assert f"[{peers}] got {one_copy // 2**20} MiB of wheels from a peer node (sha256 " \
           "checked)" in first.output, first.output
    assert f"(uv {uv_on_nodes.release()})" in first.output, first.output
    for host in netns_cluster.hosts:
        built = netns_cluster.ssh(host, f"grep -x 'uv = {uv_on_nodes.release()}' "
                                        f"{venv}/pyvenv.cfg && cat {venv}/.selftest")
        assert built.returncode == 0, f"{host.name}: not built by uv, or no self-test record"
    venvs = {host.name: netns_cluster.ssh(host, f"readlink {venv}; stat -c %Y {venv}/.complete; "
                                          f"stat -c %Y.%y {venv}/.selftest").stdout
             for host in netns_cluster.hosts}

    second = run_inv("install", f"--version={OLD_RAY}", env=cluster_env)
    assert second.returncode == 0, second.output
    assert second.output.count("up to date (ray 2.59.0)") == len(netns_cluster.hosts)
    assert "(cached)" not in second.output and "pushed" not in second.output
    assert f"self-test ok (ray {OLD_RAY}) at " in second.output, second.output
    assert "UTC, as recorded: not run again" in second.output
    assert venvs == {host.name: netns_cluster.ssh(host, f"readlink {venv}; stat -c %Y "
                                                  f"{venv}/.complete; stat -c %Y.%y "
                                                  f"{venv}/.selftest").stdout
                     for host in netns_cluster.hosts}, "the venv or its self-test record changed"


def test_start_joins_every_host_and_driver_runs_worker_code(netns_cluster, cluster_env,
                                                            worker_dir):
    result = run_inv("start", f"--worker-dir={worker_dir}", "--num-workers=2", env=cluster_env)
    assert result.returncode == 0, result.output
    assert "attach a driver on the head" in result.output
    seen = run_driver(netns_cluster)
    assert seen == {host.name: {"value": "v1", "cpus": 2.0} for host in netns_cluster.hosts}


def test_second_start_leaves_running_cluster_alone(netns_cluster, cluster_env, worker_dir):
    head = netns_cluster.hosts[0]
    gcs = netns_cluster.ssh(head, "pgrep -x gcs_server").stdout
    result = run_inv("start", f"--worker-dir={worker_dir}", env=cluster_env)
    assert result.returncode == 0, result.output
    assert "] head already running" in result.output
    others = fold(host.ip for host in netns_cluster.hosts[1:])
    assert f"[{others}] already running\n" in result.output  # said once for them all
    assert "nothing to do" in result.output
    assert netns_cluster.ssh(head, "pgrep -x gcs_server").stdout == gcs


def test_restart_workers_loads_new_code_and_keeps_gcs(netns_cluster, cluster_env, worker_dir):
    head = netns_cluster.hosts[0]
    gcs_before = netns_cluster.ssh(head, "pgrep -x gcs_server").stdout.strip()
    assert gcs_before
    set_module_value(worker_dir, "v2")
    result = run_inv("restart-workers", f"--worker-dir={worker_dir}", env=cluster_env)
    assert result.returncode == 0, result.output
    seen = run_driver(netns_cluster)
    assert {name: info["value"] for name, info in seen.items()} == {
        host.name: "v2" for host in netns_cluster.hosts}
    assert netns_cluster.ssh(head, "pgrep -x gcs_server").stdout.strip() == gcs_before


def test_restart_workers_refuses_while_tasks_run(netns_cluster, cluster_env, worker_dir):
    head = netns_cluster.hosts[0]
    hold = ("import ray, time\nray.init()\n@ray.remote\ndef hold():\n    time.sleep(300)\n"
            "ref = hold.remote()\ntime.sleep(300)\n")
    driver = subprocess.Popen(
        netns_cluster.ssh_args(head, f". {setup_env()} && echo $$ && exec python -c "
                                     f"{shlex.quote(hold)}"),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    remote_pid = int(driver.stdout.readline())
    try:
        deadline = time.monotonic() + 120
        while not any("ray::hold" in line for host in netns_cluster.hosts
                      for line in ray_processes(netns_cluster, host)):
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.5)
        refused = run_inv("restart-workers", f"--worker-dir={worker_dir}", env=cluster_env)
        assert refused.returncode == 1
        assert "tasks are running (ray::hold)" in refused.output
    finally:
        netns_cluster.ssh(head, f"kill {remote_pid}")
        driver.kill()
        driver.wait()


def test_exec_runs_on_every_host_with_prefixed_output(netns_cluster, cluster_env):
    result = run_inv("exec", "hostname && ray --version", env=cluster_env)
    assert result.returncode == 0, result.output
    for host in netns_cluster.hosts:
        assert f"[{host.ip}] | {host.name}" in result.output
    assert result.output.count(f"ray, version {OLD_RAY}") == 3


def test_update_moves_every_host_and_restarts_with_same_settings(netns_cluster, cluster_env):
    result = run_inv("update", f"--version={NEW_RAY}", env=cluster_env)
    assert result.returncode == 0, result.output
    assert venv_versions(netns_cluster) == {host.name: NEW_RAY for host in netns_cluster.hosts}
    seen = run_driver(netns_cluster)
    assert seen == {host.name: {"value": "v2", "cpus": 2.0} for host in netns_cluster.hosts}
    gcs = netns_cluster.ssh(netns_cluster.hosts[0], "pgrep -x gcs_server").stdout
    again = run_inv("update", f"--version={NEW_RAY}", env=cluster_env)
    assert again.returncode == 0, again.output
    assert f"every node already runs ray {NEW_RAY}; nothing to do" in again.output
    assert netns_cluster.ssh(netns_cluster.hosts[0], "pgrep -x gcs_server").stdout == gcs


def test_test_passes_then_names_the_host_whose_ray_died(netns_cluster, cluster_env):
    passing = run_inv("test", env=cluster_env)
    assert passing.returncode == 0, passing.output
    victim = netns_cluster.hosts[2]
    killed = netns_cluster.ssh(victim, "pkill -9 -x raylet; sleep 1; pgrep -x raylet")
    assert killed.stdout.strip() == ""
    failing = run_inv("test", env=cluster_env)
    assert failing.returncode != 0
    assert f"test failed on 1 of 3 nodes: {victim.ip}" in failing.output, failing.output
    assert "Traceback" not in failing.output


def test_makefile_chain_install_start_test(netns_cluster, cluster_env, worker_dir):
    env = dict(cluster_env, INVOKE_RAY_WORKER_DIR=worker_dir, INVOKE_RAY_VERSION=NEW_RAY,
               PYTHON=sys.executable)
    result = run_inv(command=["make", "-C", REPO, "cluster"], env=env)
    assert result.returncode == 0, result.output
    assert f"test: {len(netns_cluster.hosts)} nodes ok in " in result.output
    seen = run_driver(netns_cluster)
    assert set(seen) == {host.name for host in netns_cluster.hosts}


def test_stop_leaves_no_ray_process(netns_cluster, cluster_env):
    result = run_inv("stop", env=cluster_env)
    assert result.returncode == 0, result.output
    for host in netns_cluster.hosts:
        assert ray_processes(netns_cluster, host) == []
    again = run_inv("stop", env=cluster_env)
    head, *workers = netns_cluster.hosts
    assert again.returncode == 0, again.output
    assert f"[{fold(host.ip for host in workers)}] nothing running\n" in again.output
    assert f"[{head.ip}] nothing running\n" in again.output


def test_unreachable_host_fails_start_fast_and_rerun_with_hosts_completes(
        netns_cluster, cluster_env, worker_dir):
    nodes = os.path.join(netns_cluster.base, "nodes-with-dead-host.txt")
    live = [host.ip for host in netns_cluster.hosts]
    with open(nodes, "w") as handle:
        handle.write("\n".join(live + [netns_cluster.unused_ip]) + "\n")
    env = dict(cluster_env, INVOKE_RAY_NODES=nodes, INVOKE_RAY_CONNECT_TIMEOUT="5")
    failed = run_inv("start", f"--worker-dir={worker_dir}", env=env, timeout=120)
    assert failed.returncode != 0
    assert netns_cluster.unused_ip in failed.output.splitlines()[-2], failed.output
    assert "Traceback" not in failed.output
    rerun = run_inv("start", f"--worker-dir={worker_dir}", f"--hosts={','.join(live)}",
                    env=env)
    assert rerun.returncode == 0, rerun.output
    assert set(run_driver(netns_cluster)) == {host.name for host in netns_cluster.hosts}
    assert run_inv("stop", f"--hosts={','.join(live)}", env=env).returncode == 0


def test_malformed_nodes_file_fails_before_any_ssh(netns_cluster, cluster_env):
    nodes = os.path.join(netns_cluster.base, "nodes-malformed.txt")
    with open(nodes, "w") as handle:
        handle.write(f"{netns_cluster.hosts[0].ip}\n\n{netns_cluster.hosts[1].ip}:99999\n")
    known_hosts = os.path.join(netns_cluster.base, "fresh_known_hosts")
    env = dict(cluster_env, INVOKE_RAY_NODES=nodes, INVOKE_RAY_KNOWN_HOSTS=known_hosts)
    result = run_inv("start", env=env)
    assert result.returncode == 2
    assert f"{nodes}:3: bad port '99999'" in result.output
    assert "Traceback" not in result.output
    assert not os.path.exists(known_hosts), "no host may be contacted"
