"""Safe by default, on the namespaced cluster: host keys, login errors, the Ray token,
hostile values, preflight, an update that fails on one node, and a scoped stop."""

import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import NEW_RAY, OLD_RAY, read_until, run_inv, start_inv
from host_state import node_path, ray_processes, run_driver, venv_versions


def status(env, **overrides):
    return run_inv("status", env=dict(env, **overrides))


def test_changed_host_key_is_refused_unless_checking_is_off(netns_cluster, running, tmp_path):
    h1, h2, _ = netns_cluster.hosts
    lines = open(netns_cluster.known_hosts).read().splitlines()
    h1_key = next(line for line in lines if line.startswith(h1.ip + " ")).split(" ", 1)[1]
    forged = tmp_path / "known_hosts"
    forged.write_text("".join(f"{h2.ip} {h1_key}\n" if line.startswith(h2.ip + " ")
                              else line + "\n" for line in lines))
    result = status(running, INVOKE_RAY_KNOWN_HOSTS=str(forged))
    assert result.returncode == 1
    assert f"HOST KEY CHANGED for {h2.ip}:22" in result.output
    assert f"ssh-keygen -R {h2.ip}" in result.output
    assert f"status failed on 1 of 3 nodes: {h2.ip}" in result.output
    assert "Traceback" not in result.output

    forged_text = forged.read_text()
    unchecked = status(running, INVOKE_RAY_KNOWN_HOSTS=str(forged),
                       INVOKE_RAY_HOST_KEY_POLICY="off")
    assert unchecked.returncode == 0, unchecked.output
    assert "WARNING: host_key_policy is off: SSH host keys are not checked" in unchecked.output
    assert forged.read_text() == forged_text


def test_accept_new_records_keys_once_and_strict_refuses_unknown(netns_cluster, running,
                                                                 tmp_path):
    fresh = tmp_path / "known_hosts"
    assert status(running, INVOKE_RAY_KNOWN_HOSTS=str(fresh)).returncode == 0
    recorded = fresh.read_text()
    assert sorted(line.split()[0] for line in recorded.splitlines()) == sorted(
        host.ip for host in netns_cluster.hosts)
    assert status(running, INVOKE_RAY_KNOWN_HOSTS=str(fresh)).returncode == 0
    assert fresh.read_text() == recorded

    strict = status(running, INVOKE_RAY_KNOWN_HOSTS=str(tmp_path / "empty"),
                    INVOKE_RAY_HOST_KEY_POLICY="strict")
    assert strict.returncode == 1
    assert strict.output.count("unknown host key for") >= len(netns_cluster.hosts)
    assert not (tmp_path / "empty").exists()


def test_bad_keys_give_one_line_per_host(netns_cluster, running, tmp_path):
    missing = status(running, INVOKE_RAY_KEY_FILE=str(tmp_path / "nope"))
    assert missing.returncode == 1
    assert f"key_file {tmp_path / 'nope'} does not exist" in missing.output
    other_key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)],
                   check=True)
    wrong = status(running, INVOKE_RAY_KEY_FILE=str(other_key))
    assert wrong.returncode == 1
    for host in netns_cluster.hosts:
        assert f"login refused for root@{host.ip}:22 with {other_key}" in wrong.output
    encrypted, garbage = tmp_path / "encrypted_key", tmp_path / "garbage_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f",
                    str(encrypted)], check=True)
    garbage.write_text("not a key\n")
    no_agent = {name: value for name, value in running.items() if name != "SSH_AUTH_SOCK"}
    locked = status(no_agent, INVOKE_RAY_KEY_FILE=str(encrypted))
    assert locked.returncode == 1
    assert locked.output.count(f"FAILED: key file {encrypted} is encrypted: load it into "
                               "ssh-agent") == len(netns_cluster.hosts)
    unreadable = status(no_agent, INVOKE_RAY_KEY_FILE=str(garbage))
    assert unreadable.returncode == 1
    assert unreadable.output.count(f"FAILED: key file {garbage} is not a private key SSH "
                                   "can use") == len(netns_cluster.hosts)
    outputs = missing.output + wrong.output + locked.output + unreadable.output
    assert "Traceback" not in outputs


def test_token_stays_secret_and_is_required(netns_cluster, running):
    head = netns_cluster.hosts[0]
    token = open(running["INVOKE_RAY_AUTH_TOKEN_FILE"]).read().strip()
    for host in netns_cluster.hosts:
        mode = netns_cluster.ssh(host, f"stat -c %a {node_path('auth_token')}").stdout.strip()
        assert mode == "600"
        assert token not in netns_cluster.ssh(host, "ps -eo args").stdout
        environments = netns_cluster.ssh(host, "cat /proc/[0-9]*/environ | tr '\\0' '\\n'")
        assert token not in environments.stdout
    assert oct(os.stat(running["INVOKE_RAY_AUTH_TOKEN_FILE"]).st_mode & 0o777) == "0o600"

    no_token = netns_cluster.ssh(
        head, f"RAY_ADDRESS={head.ip}:6379 timeout 60 {node_path('venv/bin/python')} -c "
              "'import ray; ray.init()'")
    assert no_token.returncode != 0
    assert "InvalidAuthToken" in no_token.stdout + no_token.stderr

    rogue, ray = netns_cluster.hosts[2], node_path("venv/bin/ray")
    assert run_inv("stop", f"--hosts={rogue.ip}", env=running).returncode == 0
    joined = netns_cluster.ssh(
        rogue, f"timeout 45 {ray} start --address={head.ip}:6379 "
               f"--node-ip-address={rogue.ip} --temp-dir=/tmp/rogue --num-cpus=1; "
               f"echo exit=$?; {ray} stop --force >/dev/null 2>&1", timeout=120)
    assert "exit=0" not in joined.stdout
    assert "InvalidAuthToken" in joined.stdout + joined.stderr
    assert run_inv("start", f"--hosts={rogue.ip}", env=running).returncode == 0


def test_dashboard_is_reached_only_through_the_tunnel(netns_cluster, running):
    head = netns_cluster.hosts[0]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((head.ip, 8265), timeout=5)
    process = start_inv(running, "dashboard", "--local-port=18265")
    try:
        read_until(process, "dashboard of", timeout=60)
        try:
            status = urllib.request.urlopen("http://127.0.0.1:18265/", timeout=20).status
        except urllib.error.HTTPError as error:
            status = error.code
        assert status in (200, 401)
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=20)[0]
    assert "tunnel closed" in output


def test_hostile_values_never_run_as_shell(netns_cluster, running):
    head = netns_cluster.hosts[0]
    directory = "/root/x $(touch /root/pwned1);`touch /root/pwned2`"
    result = run_inv("status", f"--installation-directory={directory}", env=running)
    assert result.returncode == 0, result.output
    bad_version = run_inv("install", env=dict(running,
                                              INVOKE_RAY_VERSION="2.60.0; touch /root/pwned3"))
    assert bad_version.returncode == 2
    assert "version: '2.60.0; touch /root/pwned3' is not a Ray release number" in \
        bad_version.output
    no_nodes = run_inv("exec", "true", env=dict(running, INVOKE_RAY_NODES=os.devnull))
    assert no_nodes.returncode == 2 and "no nodes listed" in no_nodes.output
    listing = netns_cluster.ssh(head, "ls /root")
    assert "pwned" not in listing.stdout
    assert "Traceback" not in result.output + bad_version.output


def test_preflight_full_disk_stops_install_before_touching_any_node(netns_cluster, running):
    victim = netns_cluster.hosts[2]
    mount = netns_cluster.ssh(victim, "mkdir -p /root/tiny && "
                                      "mount -t tmpfs -o size=256k tmpfs /root/tiny")
    assert mount.returncode == 0, mount.stderr
    try:
        result = run_inv("install", "--installation-directory=/root/tiny/ray", env=running)
        assert result.returncode == 1
        assert f"[{victim.ip}] FAILED: only 0 MiB free for /root/tiny/ray" in result.output
        for host in netns_cluster.hosts:
            assert netns_cluster.ssh(host, "test -e /root/tiny/ray").returncode != 0
    finally:
        netns_cluster.ssh(victim, "umount /root/tiny; rmdir /root/tiny")


def test_preflight_busy_head_port_and_small_shm_start_nothing(netns_cluster, running):
    head = netns_cluster.hosts[0]
    assert run_inv("stop", env=running).returncode == 0
    listener = netns_cluster.ssh(
        head, "nohup python3 -c 'import socket, time; s = socket.socket(); "
              "s.bind((\"0.0.0.0\", 6379)); s.listen(); print(flush=True); time.sleep(120)' "
              ">/tmp/listening 2>&1 & "
              "for i in $(seq 100); do test -s /tmp/listening && break; sleep 0.1; done; "
              "test -s /tmp/listening && echo $!")
    assert listener.returncode == 0, "the port 6379 listener did not come up"
    try:
        busy = run_inv("start", env=running)
    finally:
        netns_cluster.ssh(head, f"kill {listener.stdout.strip()}; rm -f /tmp/listening")
    assert busy.returncode == 1
    assert f"[{head.ip}] FAILED: port 6379 is in use on the head" in busy.output
    small = run_inv("start", env=dict(running, INVOKE_RAY_OBJECT_STORE_MEMORY="2G"))
    assert small.returncode == 1
    assert small.output.count("less than the object store (2048 MiB)") >= 3
    for host in netns_cluster.hosts:
        assert ray_processes(netns_cluster, host) == []
    assert run_inv("start", env=running).returncode == 0


def test_failed_update_leaves_every_node_on_the_old_release(netns_cluster, running):
    head, _, victim = netns_cluster.hosts
    gcs = netns_cluster.ssh(head, "pgrep -x gcs_server").stdout.strip()
    blocked = node_path("venvs", f"ray-{OLD_RAY}-py3.11.2")
    mount = netns_cluster.ssh(victim, f"mkdir -p {blocked} && "
                                      f"mount -t tmpfs -o size=64k tmpfs {blocked}")
    assert mount.returncode == 0, mount.stderr
    try:
        failed = run_inv("update", f"--version={OLD_RAY}", env=running)
    finally:
        netns_cluster.ssh(victim, f"umount {blocked}")
    assert failed.returncode == 1
    assert f"update failed on 1 of 3 nodes: {victim.ip}" in failed.output
    assert "nothing was switched" in failed.output
    assert venv_versions(netns_cluster) == {host.name: NEW_RAY for host in netns_cluster.hosts}
    assert netns_cluster.ssh(head, "pgrep -x gcs_server").stdout.strip() == gcs

    retried = run_inv("update", f"--version={OLD_RAY}", env=running)
    assert retried.returncode == 0, retried.output
    assert venv_versions(netns_cluster) == {host.name: OLD_RAY for host in netns_cluster.hosts}
    back = run_inv("update", f"--version={NEW_RAY}", env=running)
    assert back.returncode == 0, back.output
    assert venv_versions(netns_cluster) == {host.name: NEW_RAY for host in netns_cluster.hosts}
    assert len(run_driver(netns_cluster, "greetings", "VERSION")) == 3


def test_stop_spares_another_ray_on_the_same_host(netns_cluster, running):
    neighbour = netns_cluster.hosts[1]
    other = netns_cluster.ssh(
        neighbour, f"RAY_AUTH_MODE=disabled {node_path('venv/bin/ray')} start --head --port=6500 "
                   f"--node-ip-address={neighbour.ip} --temp-dir=/tmp/other --num-cpus=1 "
                   "--object-store-memory=80000000 --include-dashboard=false "
                   "--disable-usage-stats >/dev/null 2>&1; pgrep -x gcs_server", timeout=180)
    assert other.returncode == 0, other.stderr
    try:
        result = run_inv("stop", env=running)
        assert result.returncode == 0, result.output
        survivors = netns_cluster.ssh(neighbour, "pgrep -a gcs_server").stdout
        assert "--gcs_server_port=6500" in survivors
        assert len(survivors.splitlines()) == 1
        for host in netns_cluster.hosts:
            if host is not neighbour:
                assert ray_processes(netns_cluster, host) == []
    finally:
        netns_cluster.ssh(neighbour, f"{node_path('venv/bin/ray')} stop --force >/dev/null 2>&1")
    assert ray_processes(netns_cluster, neighbour) == []
