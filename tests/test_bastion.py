"""SSH as operators have it, on namespaced hosts: a Ray head and a worker on a private
network reachable only through a bastion (sshd only), named in nodes.txt by ~/.ssh/config
aliases, the head through ProxyJump and the worker through a ProxyCommand. The whole
lifecycle works, Ray uses the nodes' private addresses (not the bastion's), and the
bastion's host key is checked like any node's."""

import json
import os
import shlex
import socket

import pytest

from conftest import namespaced_cluster, run_inv, user_env
from host_state import ray_processes

ALIVE_ADDRESSES = (
    "import json, ray; ray.init(logging_level='ERROR', log_to_driver=False); "
    "print(json.dumps(sorted(n['NodeManagerAddress'] for n in ray.nodes() if n['Alive'])))"
)


@pytest.fixture(scope="module")
def hidden():
    """A head (h1) and a worker (h2) behind a bastion."""
    with namespaced_cluster(2, tag=(os.getpid() + 37) % 10000, bastion=True) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def hidden_env(hidden):
    """nodes.txt naming the ssh_config aliases ray-head and ray-worker."""
    head, worker = hidden.hosts
    ssh_config = os.path.join(hidden.base, "ssh_config")
    with open(ssh_config, "w") as handle:
        handle.write(f"Host bastion\n  HostName {hidden.bastion.ip}\n  User root\n"
                     f"Host ray-head\n  HostName {head.ip}\n  ProxyJump bastion\n"
                     f"Host ray-worker\n  HostName {worker.ip}\n"
                     f"  ProxyCommand {hidden.proxy_command()}\n")
    return dict(user_env(hidden, ["ray-head", "ray-worker"]), INVOKE_RAY_SSH_CONFIG=ssh_config)


def host_key(host):
    with open(os.path.join(host.folder, "ssh_host_ed25519_key.pub")) as handle:
        return " ".join(handle.read().split()[:2])


def test_the_controller_reaches_the_nodes_only_through_the_bastion(hidden):
    for host in hidden.hosts:
        with pytest.raises(OSError):
            socket.create_connection((host.ip, 22), timeout=3).close()
    assert hidden.ssh(hidden.hosts[0], "hostname").stdout.strip() == "h1"


def test_lifecycle_through_the_bastion_uses_the_nodes_own_addresses(hidden, hidden_env):
    head, worker = hidden.hosts
    result = run_inv("install", "start", "test", env=hidden_env)
    try:
        assert result.returncode == 0, result.output
        assert f"cluster at {head.ip}:6379: 2 node(s) alive" in result.output
        driver = hidden.ssh(head, ". /root/ray/setup-env.sh && python -c "
                                  + shlex.quote(ALIVE_ADDRESSES))
        assert driver.returncode == 0, driver.stdout + driver.stderr
        assert json.loads(driver.stdout.strip().splitlines()[-1]) == sorted([head.ip, worker.ip])
    finally:
        stopped = run_inv("stop", env=hidden_env)
    assert stopped.returncode == 0, stopped.output
    assert "Traceback" not in result.output + stopped.output
    for host in hidden.hosts:
        assert ray_processes(hidden, host) == []
    with open(hidden.known_hosts) as handle:
        names = sorted(line.split()[0] for line in handle)
    assert names == sorted([hidden.bastion.ip, head.ip, worker.ip])


def test_the_bastion_host_key_is_checked(hidden, hidden_env, tmp_path):
    head, worker = hidden.hosts
    forged = tmp_path / "known_hosts"
    forged.write_text(f"{hidden.bastion.ip} {host_key(head)}\n{head.ip} {host_key(head)}\n"
                      f"{worker.ip} {host_key(worker)}\n")
    result = run_inv("status", env=dict(hidden_env, INVOKE_RAY_KNOWN_HOSTS=str(forged)))
    assert result.returncode == 1, result.output
    assert (f"[ray-head] FAILED: HOST KEY CHANGED for {hidden.bastion.ip}, the jump host of "
            f"ray-head ({head.ip}:22)") in result.output
    assert f"ssh-keygen -R {hidden.bastion.ip} -f {forged}" in result.output
    assert "status failed on 1 of 2 nodes: ray-head" in result.output
    assert "Traceback" not in result.output

    retry = result.output.strip().splitlines()[-1]
    assert retry.startswith("retry just them: inv status ")
    words = shlex.split(retry.split(": ", 1)[1])
    again = run_inv(*words[1:], env=hidden_env)
    assert again.returncode == 0, again.output
    assert "ray-head  h1" in again.output and "ray-worker" not in again.output
