"""Output and dry runs on three namespaced hosts reached over real SSH (no Ray needed):
exec's identical output folded into one group, status --json valid against README's
schema, and install --dry-run leaving every node byte-for-byte as it was."""

import json
import os

import jsonschema
import pytest

from conftest import namespaced_cluster, run_inv, user_env
from test_output import readme_schema

TAG = (os.getpid() + 37) % 10000
HOME = "/root/ray"
# Every file of the installation directory and the user's home with its mode and digest,
# and the processes running (without the SSH session that asks).
SNAPSHOT = ("cd /root && find . -xdev -printf '%p %m %s %T@\\n' | sort && "
            "find . -xdev -type f -exec sha256sum {} + | sort && "
            "ps -eo comm= | grep -vxE 'sshd|sh|bash|ps|sort|grep|sshd-session' | sort")


@pytest.fixture(scope="module")
def hosts():
    with namespaced_cluster(3, tag=TAG) as cluster:
        env = user_env(cluster, [host.ip for host in cluster.hosts])
        env["INVOKE_RAY_INSTALLATION_DIRECTORY"] = HOME
        yield cluster, env


def test_exec_true_prints_one_group_and_hostname_one_line_each(hosts):
    cluster, env = hosts
    quiet = run_inv("exec", "true", env=env)
    assert quiet.returncode == 0, quiet.output
    ips = [host.ip for host in cluster.hosts]
    prefix = os.path.commonprefix(ips).rsplit(".", 1)[0]
    last = sorted(int(ip.rsplit(".", 1)[1]) for ip in ips)
    assert last == list(range(last[0], last[0] + 3)), ips
    lines = [line for line in quiet.stdout.splitlines() if "new host key" not in line]
    assert lines[0] == f"[{prefix}.[{last[0]}-{last[-1]}]] (no output)", quiet.stdout
    assert lines[1].startswith("exec: 3 nodes ok in "), quiet.stdout
    names = run_inv("exec", "hostname", env=env)
    for host in cluster.hosts:
        assert f"[{host.ip}] | {host.name}\n" in names.stdout


def test_status_json_is_valid_and_alone_on_stdout(hosts):
    cluster, env = hosts
    status = run_inv("status", "--json", env=env)
    assert status.returncode == 0, status.output
    document = json.loads(status.stdout)
    jsonschema.validate(document, readme_schema())
    assert [node["hostname"] for node in document["nodes"]] == [
        host.name for host in cluster.hosts]
    assert all(node["running_as"] == "stopped" and node["ray"] is None
               for node in document["nodes"])
    assert document["cluster"]["running"] is False


def test_install_dry_run_leaves_every_node_byte_for_byte_unchanged(hosts):
    cluster, env = hosts
    for host in cluster.hosts:
        cluster.ssh(host, f"mkdir -p {HOME} && echo mine > {HOME}/notes.txt")
    before = {host.ip: cluster.ssh(host, SNAPSHOT).stdout for host in cluster.hosts}
    dry = run_inv("install", "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.output
    assert json.loads(dry.stdout.splitlines()[0])["dry_run"] is True
    assert "then build venv /root/ray/.ray-tasks/venvs/ray-" in dry.stderr
    after = {host.ip: cluster.ssh(host, SNAPSHOT).stdout for host in cluster.hosts}
    assert after == before
