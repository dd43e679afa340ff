"""A node reached as a plain user whose Python lacks venv support: install asks sudo for root.

The test host gets, in its own mount namespace only: a user `op` with a password and a sudo
rule, a Python whose ensurepip is hidden (as on Debian without python3.X-venv), and an
`apt-get` stand-in ahead of the real one on sudo's path: the hosts have no network and share
this machine's package database, so the stand-in records who ran it and with which command
lines around, then uncovers ensurepip, as installing the package would. sudo, PAM, the
password check and our prompt are real.
"""

import os
import shlex
import subprocess

import pytest

from conftest import NEW_RAY, namespaced_cluster, run_inv, run_inv_on_terminal, user_env
from host_state import node_path

PASSWORD = "op's pass phrase"
PROMPT = "sudo password for the nodes:"


def prepare_operator(cluster, host):
    """Make the user, the sudo rule, the missing venv support and the apt-get stand-in."""
    found = cluster.ssh(host, "/usr/bin/python3 -c 'import ensurepip, os, sys; "
                              "print(os.path.dirname(ensurepip.__file__)); "
                              "print(\"python%d.%d-venv\" % sys.version_info[:2])'")
    assert found.returncode == 0, found.stderr
    ensurepip, package = found.stdout.split()
    hashed = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=PASSWORD,
                            capture_output=True, text=True, check=True).stdout.strip()
    stand_in = ("#!/bin/sh\n"
                '{ echo "uid=$(id -u) args=$*"; ps -eo args; } >> /tmp/apt-get.log\n'
                f"umount {ensurepip}\n")
    script = " && ".join([
        "for f in passwd group shadow; do cp /etc/$f /tmp/$f; done",
        "echo op:x:1500:1500::/home/op:/bin/sh >> /tmp/passwd",
        "echo op:x:1500: >> /tmp/group",
        f"echo {shlex.quote(f'op:{hashed}:20000:0:99999:7:::')} >> /tmp/shadow",
        "for f in passwd group shadow; do mount --bind /tmp/$f /etc/$f; done",
        "mount -t tmpfs -o mode=755 tmpfs /home",
        "install -d -o op -g op /home/op",
        "mount -t tmpfs -o mode=755 tmpfs /etc/sudoers.d",
        "echo 'op ALL=(ALL) ALL' > /etc/sudoers.d/op",
        "chmod 440 /etc/sudoers.d/op",
        f"mount -t tmpfs -o mode=755 tmpfs {ensurepip}",
        "mount -t tmpfs -o mode=755 tmpfs /usr/local/sbin",
        f"printf %s {shlex.quote(stand_in)} > /usr/local/sbin/apt-get",
        "chmod 755 /usr/local/sbin/apt-get",
    ])
    done = cluster.ssh(host, script)
    assert done.returncode == 0, done.stderr
    return package


@pytest.fixture(scope="module")
def operator_node():
    """One host (its own, removed afterwards) reached as `op`: (cluster, host, env, package)."""
    with namespaced_cluster(1, tag=(os.getpid() + 1) % 10000) as cluster:
        host = cluster.hosts[0]
        package = prepare_operator(cluster, host)
        yield cluster, host, user_env(cluster, [f"op@{host.ip}"]), package


def test_install_gets_venv_support_through_sudo_with_a_prompted_password(operator_node):
    cluster, host, env, package = operator_node
    no_password = run_inv("install", env=env)
    assert no_password.returncode == 1
    assert (f"[op@{host.ip}] FAILED: this Python lacks venv support ({package}) and sudo "
            "wants a password: rerun with --prompt-for-sudo-password") in no_password.output
    venv = node_path("venv", home="/home/op/ray")
    assert cluster.ssh(host, f"test -e /tmp/apt-get.log || test -e {venv}").returncode != 0

    status, shown = run_inv_on_terminal("install", "--prompt-for-sudo-password", env=env,
                                        prompt=PROMPT, typed="not-the-password-4711")
    assert status == 1
    assert f"[op@{host.ip}] FAILED: sudo refused the password" in shown
    assert "not-the-password-4711" not in shown

    status, shown = run_inv_on_terminal("install", "--prompt-for-sudo-password", env=env,
                                        prompt=PROMPT, typed=PASSWORD)
    assert status == 0, shown
    assert f"[op@{host.ip}] installed {package}" in shown
    assert PASSWORD not in shown
    log = cluster.ssh(host, "cat /tmp/apt-get.log").stdout
    assert log.startswith(f"uid=0 args=install -y -q {package}\n")
    assert "sudo -S -p" in log
    assert PASSWORD not in log
    ray = cluster.ssh(host, f"stat -c %U {node_path('venvs', home='/home/op/ray')} && "
                            f"{venv}/bin/python -c 'import ray; print(ray.__version__)'")
    assert ray.stdout.split() == ["op", NEW_RAY], ray.stderr
