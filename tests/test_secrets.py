"""Secrets are never readable by others, at any instant: a file put with a private mode is
never reachable by another user with a wider mode (checked at every step of the write),
a directory made for it is 0700, and a user's ~/.invoke.yaml / ~/.fabric.yaml asking for
a pty and echo cannot make ray-tasks echo what it feeds on stdin (a sudo password) or the
commands it runs. Then host keys: an @revoked key is refused, @cert-authority is skipped."""

import os
import stat
import subprocess

import paramiko
import pytest

from conftest import namespaced_cluster, run_inv, user_env
from ray_tasks import config
from ray_tasks.hostkeys import KnownHosts
from ray_tasks.inventory import Node
from ray_tasks.hosts import LocalHost, SshHost

SECRET = b"0123456789abcdef-the-cluster-token\n"
PTY_AND_ECHO = "run:\n  pty: true\n  echo: true\n  echo_stdin: true\n"


def exposed(top):
    """Files under ``top`` that another user could open while their mode is wider than
    0600: every directory on the way lets others in, and the file has group/other bits."""
    found = []
    for directory, subdirectories, files in os.walk(top):
        if not os.stat(directory).st_mode & 0o011:
            subdirectories.clear()
            continue
        for name in files:
            path = os.path.join(directory, name)
            if os.lstat(path).st_mode & 0o077:
                found.append(f"{path} ({stat.S_IMODE(os.lstat(path).st_mode):04o})")
    return found


def local_host(tmp_path):
    settings = config.from_mapping({"installation_directory": str(tmp_path)})
    return LocalHost(Node("localhost"), settings)


@pytest.fixture
def watched(monkeypatch):
    """Look for exposed files under a directory before every chmod, rename or replace."""
    seen = []

    def watch(top):
        for name in ("chmod", "fchmod", "replace", "rename"):
            original = getattr(os, name)

            def checked(*args, _original=original, **kwargs):
                seen.extend(exposed(top))
                return _original(*args, **kwargs)

            monkeypatch.setattr(os, name, checked)
        return seen

    return watch


def test_local_secret_never_reuses_a_wide_leftover(tmp_path, watched):
    tmp_path.chmod(0o755)
    target = tmp_path / "auth_token"
    leftover = tmp_path / "auth_token.new"
    leftover.write_bytes(b"stale")
    leftover.chmod(0o666)
    seen = watched(str(tmp_path))
    local_host(tmp_path).put(SECRET, str(target), mode=0o600)
    assert seen == []
    assert target.read_bytes() == SECRET
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not leftover.exists()


def test_local_secret_directory_is_made_private(tmp_path):
    target = tmp_path / "state" / "secrets" / "auth_token"
    old_umask = os.umask(0o022)
    try:
        local_host(tmp_path).put(SECRET, str(target), mode=0o600)
        local_host(tmp_path).put(b"#!/bin/sh\n", str(tmp_path / "bin" / "tool"), mode=0o755)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "bin").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "bin" / "tool").stat().st_mode) == 0o755


def test_local_commands_ignore_pty_and_echo_in_the_users_invoke_yaml(tmp_path, monkeypatch,
                                                                    capfd):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".invoke.yaml").write_text(PTY_AND_ECHO)
    result = local_host(tmp_path).run("read line; echo read-it", "read a line",
                                      stdin="hunter2 pass\n")
    assert result.stdout == "read-it\n"
    shown = capfd.readouterr()
    assert "hunter2" not in result.stdout + result.stderr + shown.out + shown.err
    assert "read line" not in shown.out + shown.err


@pytest.fixture(scope="module")
def node():
    """One namespaced host reached over SSH: (cluster, host)."""
    with namespaced_cluster(1, tag=(os.getpid() + 23) % 10000) as cluster:
        yield cluster, cluster.hosts[0]


def ssh_host(cluster, host):
    settings = config.from_mapping({
        "key_file": cluster.key, "username": "root", "python": "/usr/bin/python3",
        "known_hosts": cluster.known_hosts})
    connected = SshHost(Node(host.ip), settings, KnownHosts(cluster.known_hosts, "accept-new"))
    connected.open()
    return connected


def test_ssh_secret_is_never_reachable_with_a_wide_mode(node, monkeypatch):
    cluster, host = node
    root = os.path.join(host.folder, "root")
    os.chmod(root, 0o755)
    os.makedirs(os.path.join(root, "open"), mode=0o755)
    seen, original = [], paramiko.SFTPClient._request

    def checked(self, *args):
        try:
            return original(self, *args)
        finally:
            seen.extend(exposed(root))

    connected = ssh_host(cluster, host)
    monkeypatch.setattr(paramiko.SFTPClient, "_request", checked)
    try:
        connected.put(SECRET, "/root/open/auth_token", mode=0o600)
        connected.put(SECRET, "/root/fresh/private/auth_token", mode=0o600)
    finally:
        connected.close()
    assert seen == []
    for path in ("open/auth_token", "fresh/private/auth_token"):
        with open(os.path.join(root, path), "rb") as handle:
            assert handle.read() == SECRET
        assert stat.S_IMODE(os.stat(os.path.join(root, path)).st_mode) == 0o600
    assert sorted(os.listdir(os.path.join(root, "open"))) == ["auth_token"]
    assert stat.S_IMODE(os.stat(os.path.join(root, "fresh", "private")).st_mode) == 0o700


def test_ssh_commands_ignore_pty_and_echo_in_the_users_fabric_yaml(node, tmp_path,
                                                                  monkeypatch, capfd):
    cluster, host = node
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".fabric.yaml").write_text(PTY_AND_ECHO)
    connected = ssh_host(cluster, host)
    try:
        result = connected.run("read line; echo read-it", "read a line", stdin="hunter2 pass\n")
    finally:
        connected.close()
    assert result.stdout == "read-it\n"
    shown = capfd.readouterr()
    assert "hunter2" not in result.stdout + result.stderr + shown.out + shown.err
    assert "read line" not in shown.out + shown.err


def test_revoked_host_key_is_refused_and_cert_authorities_skipped(node, tmp_path):
    cluster, host = node
    with open(os.path.join(host.folder, "ssh_host_ed25519_key.pub")) as handle:
        key = " ".join(handle.read().split()[:2])
    authority = tmp_path / "ca"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(authority)],
                   check=True)
    authority_key = " ".join(open(f"{authority}.pub").read().split()[:2])
    env = user_env(cluster, [host.ip])
    known = tmp_path / "known_hosts"
    known.write_text(f"@cert-authority * {authority_key}\n{host.ip} {key}\n"
                     f"{host.ip} sk-unknown-type AAAA\n")
    env["INVOKE_RAY_KNOWN_HOSTS"] = str(known)
    trusted = run_inv("status", env=env)
    assert trusted.returncode == 0, trusted.output
    assert "1 @cert-authority line(s): skipped, paramiko does not verify host certificates" \
        in trusted.output
    known.write_text(f"{host.ip} {key}\n@revoked * {key}\n")
    revoked = run_inv("status", env=env)
    assert revoked.returncode == 1, revoked.output
    assert (f"FAILED: the host key of {host.ip}:22 (ssh-ed25519) is marked @revoked in "
            f"{known}: refused") in revoked.output
    assert "Traceback" not in revoked.output


@pytest.fixture(scope="module")
def installed(node):
    """Ray installed on the node, asked for as ``2.60``: the environment for inv."""
    cluster, host = node
    env = user_env(cluster, [host.ip])
    result = run_inv("install", "--version=2.60", env=env)
    assert result.returncode == 0, result.output
    return env


def test_a_short_version_is_the_installed_release(installed):
    again = run_inv("install", "--version=2.60", env=installed)
    assert again.returncode == 0, again.output
    assert "up to date (ray 2.60.0)" in again.output
    update = run_inv("update", "--version=2.60", env=installed)
    assert update.returncode == 0, update.output
    assert "every node already runs ray 2.60.0; nothing to do" in update.output


def test_the_token_on_a_started_node_is_private(node, installed):
    cluster, host = node
    try:
        started = run_inv("start", env=installed)
        assert started.returncode == 0, started.output
    finally:
        stopped = run_inv("stop", env=installed)
    assert stopped.returncode == 0, stopped.output
    with open(installed["INVOKE_RAY_AUTH_TOKEN_FILE"]) as handle:
        token = handle.read().strip().encode()
    holding = []
    for directory, _, files in os.walk(os.path.join(host.folder, "root")):
        for name in files:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and not os.path.islink(path) \
                    and os.path.getsize(path) < 4096:
                with open(path, "rb") as handle:
                    if token in handle.read():
                        holding.append((path, stat.S_IMODE(os.stat(path).st_mode)))
    assert holding and all(mode == 0o600 for _, mode in holding), holding
    assert not [path for path, _ in holding if ".new" in path]
