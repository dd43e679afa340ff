"""What keeps a task cheap per host, on two sshd-only namespaced hosts: each command on a
session channel of its own (its streams, exit status, input, time limit), AES-GCM offered
first, and one Fabric configuration shared by a task's connections."""

import io
import os

import pytest

from conftest import namespaced_cluster
from ray_tasks import config
from ray_tasks.hostkeys import KnownHosts
from ray_tasks.hosts import SshHost, StepError
from ray_tasks.inventory import Node
from ray_tasks.runner import Runner

TAG = (os.getpid() + 131) % 10000


@pytest.fixture(scope="module")
def cluster():
    with namespaced_cluster(2, tag=TAG) as built:
        yield built


def settings_of(cluster):
    return config.from_mapping({"key_file": cluster.key, "username": "root",
                                "python": "/usr/bin/python3", "known_hosts": cluster.known_hosts})


@pytest.fixture()
def host(cluster):
    connected = SshHost(Node(cluster.hosts[0].ip), settings_of(cluster),
                        KnownHosts(cluster.known_hosts, "accept-new"))
    connected.open()
    yield connected
    connected.close()


def test_a_connection_offers_aes_gcm_first(host):
    assert host.connection.transport.remote_cipher == "aes128-gcm@openssh.com"


def test_a_command_gets_its_input_then_end_of_file_and_keeps_its_streams_apart(host):
    result = host.run("cat; echo err >&2; exit 3", "read its input", stdin="in\n",
                      check=False)
    assert (result.stdout, result.stderr, result.exited) == ("in\n", "err\n", 3)


def test_much_output_on_both_streams_at_once_is_read_to_the_end(host):
    # More than a channel's window (2 MiB) on stderr while stdout waits: a reader of one
    # stream at a time would stall here until the time limit.
    result = host.run("head -c 3000000 /dev/zero | tr '\\0' e >&2; echo done", "print",
                      timeout=60)
    assert result.stdout == "done\n"
    assert len(result.stderr) == 3000000


def test_a_command_over_its_time_limit_fails_with_what_it_printed(host):
    with pytest.raises(StepError) as failed:
        host.run("echo started; sleep 30", "wait", timeout=1)
    assert failed.value.message == "could not wait: no answer within 1s"
    assert failed.value.output == "started\n"
    assert host.run("echo still", "answer").stdout == "still\n"


def test_a_streamed_command_writes_both_streams_as_they_arrive(host):
    out = io.StringIO()
    result = host.stream("echo out; echo err >&2; exit 4", "follow", out)
    assert sorted(out.getvalue().splitlines()) == ["err", "out"]
    assert result.exited == 4


def test_the_hosts_of_a_task_share_one_fabric_configuration(cluster):
    runner = Runner(settings_of(cluster), [Node(host.ip) for host in cluster.hosts],
                    probe=False)
    first, second = runner.hosts
    assert first.connection.config is second.connection.config
    assert second.connection.host == cluster.hosts[1].ip
