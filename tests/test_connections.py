"""SSH connections without hosts: dead-host detection over any transport, jump hosts'
host-key policy, the fix hints, the retry command, and the rule that picks each node's
address for Ray."""

import json
import shlex
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import paramiko
import pytest
from invoke.exceptions import Exit

from ray_tasks import config, node_address, report
from ray_tasks.hostkeys import AcceptNew, KnownHosts
from ray_tasks.inventory import Node, parse_nodes
from ray_tasks.node_scripts import source
from ray_tasks.hosts import SshHost, StepError
from ray_tasks.runner import Outcome, Runner
from ray_tasks.ssh_connections import Watchdog, connect_error, watch_liveness


class FakeTransport:
    """A transport whose server answers keepalive requests, or stays silent (``silent``)
    the way a dead host behind a jump host does: the request then waits until closed."""

    def __init__(self, silent=False, sock=None):
        self.silent = silent
        self.sock = sock or object()
        self.closed = threading.Event()
        self.requests = 0

    def is_active(self):
        return not self.closed.is_set()

    def global_request(self, kind, wait=True):
        assert kind == "keepalive@openssh.com" and wait
        self.requests += 1
        if self.silent:
            self.closed.wait()

    def close(self):
        self.closed.set()


@pytest.mark.parametrize("carrier", ["jump host channel", "ProxyCommand", "macOS socket"])
def test_watch_liveness_bounds_a_dead_host_on_any_transport(carrier, monkeypatch):
    if carrier == "macOS socket":
        monkeypatch.delattr(socket, "TCP_USER_TIMEOUT")
        sock = socket.socket()
    else:
        sock = paramiko.Channel(0) if carrier == "jump host channel" else \
            paramiko.ProxyCommand("true")
    transport = FakeTransport(silent=True, sock=sock)
    started = time.monotonic()
    watchdog = watch_liveness(transport, 0.05)
    assert transport.closed.wait(10), "a silent host must be dropped"
    assert time.monotonic() - started < 10
    watchdog.join(2)
    assert not watchdog.is_alive()
    sock.close()


def test_the_watchdog_keeps_an_answering_connection_and_stops_when_told():
    transport = FakeTransport()
    watchdog = Watchdog(transport, interval=0.01, deadline=0.05)
    watchdog.start()
    time.sleep(0.3)
    assert transport.requests >= 5
    assert transport.is_active()
    watchdog.stop()
    watchdog.join(2)
    assert not watchdog.is_alive() and transport.is_active()


def test_the_watchdog_closes_a_silent_connection():
    transport = FakeTransport(silent=True)
    watchdog = Watchdog(transport, interval=0.01, deadline=0.1)
    started = time.monotonic()
    watchdog.start()
    assert transport.closed.wait(10)
    assert 0.1 <= time.monotonic() - started < 10
    assert transport.requests == 1


def settings_for(tmp_path, ssh_config="", **values):
    path = tmp_path / "ssh_config"
    path.write_text(ssh_config)
    return config.from_mapping(dict(values, ssh_config=str(path),
                                    known_hosts=str(tmp_path / "known hosts")))


def changed_key(hostname):
    key, other = paramiko.RSAKey.generate(1024), paramiko.RSAKey.generate(1024)
    return paramiko.BadHostKeyException(hostname, key, other)


def test_host_key_hint_names_a_non_22_port_as_known_hosts_does(tmp_path):
    settings = settings_for(tmp_path)
    host = SshHost(Node("h", port=2222), settings, KnownHosts(settings.known_hosts, "strict"))
    message = connect_error(changed_key("h"), host)
    assert message.startswith("HOST KEY CHANGED for h:2222 (expected ssh-rsa, got ssh-rsa)")
    assert message.endswith(f"ssh-keygen -R '[h]:2222' -f '{tmp_path}/known hosts'")


def test_a_jump_host_gets_the_host_key_policy_and_its_own_hint(tmp_path):
    settings = settings_for(tmp_path, "Host n\n  HostName 10.1.1.1\n  ProxyJump jump:2200\n",
                            key_file=str(tmp_path / "key"))
    known = KnownHosts(settings.known_hosts, "accept-new")
    host = SshHost(Node("n"), settings, known)
    hop, = host.jump_hosts
    assert (hop.host, hop.port) == ("jump", 2200)
    assert isinstance(hop.client._policy, AcceptNew)
    assert hop.connect_timeout == settings.connect_timeout
    assert hop.connect_kwargs["key_filename"][0] == settings.key_file
    message = connect_error(changed_key("jump"), host)
    assert message.startswith("HOST KEY CHANGED for [jump]:2200, the jump host of n "
                              "(10.1.1.1:22)")
    assert "ssh-keygen -R '[jump]:2200' -f" in message


def test_proxy_jump_hosts_are_visited_in_their_order(tmp_path):
    settings = settings_for(tmp_path, "Host n\n  ProxyJump first,root@second:2200\n")
    host = SshHost(Node("n"), settings, KnownHosts(settings.known_hosts, "accept-new"))
    assert [(hop.user, hop.host, hop.port) for hop in host.jump_hosts][::-1] == [
        (host.jump_hosts[-1].user, "first", 22), ("root", "second", 2200)]
    assert host.jump_hosts[-1].gateway is None
    assert all(isinstance(hop.client._policy, AcceptNew) for hop in host.jump_hosts)


def test_a_wildcard_proxy_jump_and_proxy_jump_none_are_read_as_ssh_does(tmp_path):
    settings = settings_for(tmp_path, "Host direct\n  ProxyJump none\n"
                                      "Host *\n  ProxyJump bastion\n")
    known = KnownHosts(settings.known_hosts, "accept-new")
    through = SshHost(Node("n"), settings, known)
    assert [hop.host for hop in through.jump_hosts] == ["bastion"]
    assert SshHost(Node("direct"), settings, known).jump_hosts == []


def retry_line(task, failed, arguments=(), **values):
    settings = config.from_mapping(values)
    outcomes = {name: Outcome(ok=False) for name in failed}
    outcomes["fine"] = Outcome()
    with pytest.raises(Exit) as stopped:
        report.verdict(task, outcomes, settings, config.DEFAULTS, arguments)
    assert stopped.value.code == 1
    return stopped.value.message.splitlines()[-1]


def test_the_retry_hint_is_a_quoted_command_keeping_the_flags_that_matter():
    nodes = "/tmp/my nodes/it's.txt"
    line = retry_line("start", ["root@a:2222", "[fd00::1]:22"], nodes=nodes,
                      worker_dir="my code", num_workers=3, port=6390)
    how, command = line.split(": ", 1)
    assert how == "retry just them"
    assert shlex.split(command) == ["inv", "start", f"--nodes={nodes}",
                                    "--worker-dir=my code", "--num-workers=3",
                                    "--hosts=root@a:2222,[fd00::1]:22"]
    install = shlex.split(retry_line("install", ["b"], version="2.59.0", wheelhouse=True)
                          .split(": ", 1)[1])
    assert install == ["inv", "install", "--version=2.59.0", "--wheelhouse", "--hosts=b"]
    selftest = shlex.split(retry_line("selftest", ["b"], version="2.59.0").split(": ", 1)[1])
    assert selftest == ["env", "INVOKE_RAY_VERSION=2.59.0", "inv", "selftest", "--hosts=b"]
    run = shlex.split(retry_line("exec", ["b"], ("echo 'hi' $HOME",)).split(": ", 1)[1])
    assert run == ["inv", "exec", "echo 'hi' $HOME", "--hosts=b"]


def test_update_is_rerun_whole_never_with_hosts():
    line = retry_line("update", ["b"], nodes="n.txt", version="2.59.0")
    assert line == "rerun it: inv update --nodes=n.txt --version=2.59.0"
    assert "--hosts" not in retry_line("update", ["b"])


def test_the_head_is_reached_where_its_ssh_server_took_the_connection():
    facts = {"address": {"ssh_server": "10.2.0.11",
                         "to_head": {"name": "h", "target": "10.9.9.9", "source": "10.2.0.99"}}}
    assert node_address.head_ip(facts["address"]) == "10.2.0.11"
    facts["address"]["ssh_server"] = None
    assert node_address.head_ip(facts["address"]) == "10.2.0.99"
    facts["address"]["to_head"] = {"name": "h", "target": None, "source": None,
                                   "error": "Name or service not known"}
    with pytest.raises(node_address.AddressUnknown, match="SSH_CONNECTION is not set on it "
                       "and h does not route there \\(Name or service not known\\)"):
        node_address.head_ip(facts["address"])


def test_a_node_is_reached_at_its_source_address_towards_the_head():
    route = {"name": "head", "target": "10.2.0.11", "source": "10.2.0.12"}
    assert node_address.towards_head(route, "10.2.0.11") == "10.2.0.12"
    assert node_address.towards_head(route, "10.7.0.1") is None
    assert node_address.towards_head({"target": None, "source": None}, "10.7.0.1") is None
    assert node_address.towards_head({"target": "fd00:0::1", "source": "fd00::2"},
                                     "fd00::1") == "fd00::2"
    error = node_address.no_route({"error": "Network is unreachable"}, "10.7.0.1")
    assert str(error).startswith("no route from this node to the head at 10.7.0.1 "
                                 "(Network is unreachable)")


class RoutingHost:
    """A probed node whose route towards the head went to ``target``; asked again, it
    answers ``second`` (what node_state's route action prints)."""

    def __init__(self, target, second, node=Node("node.example")):
        self.facts = SimpleNamespace(address={"to_head": {
            "name": "head.example", "target": target, "source": "10.2.0.12"}})
        self.second, self.asked, self.ip, self.node = second, [], None, node

    def run_node_script(self, action, *args, what):
        self.asked.append((action, *args))
        return SimpleNamespace(stdout=json.dumps(self.second) + "\n")


def test_a_node_that_resolves_the_head_elsewhere_is_asked_again_towards_its_address():
    runner = Runner(config.from_mapping({"port": 6390}), [])
    same = RoutingHost("10.2.0.11", None)
    runner._place_towards(same, "10.2.0.11")
    assert (same.ip, same.asked) == ("10.2.0.12", [])
    natted = RoutingHost("203.0.113.5", {"target": "10.2.0.11", "source": "10.2.0.13"})
    runner._place_towards(natted, "10.2.0.11")
    assert (natted.ip, natted.asked) == ("10.2.0.13", [("route", "10.2.0.11", "6390")])
    lost = RoutingHost("203.0.113.5", {"target": None, "source": None,
                                       "error": "Network is unreachable"})
    with pytest.raises(StepError, match="no route from this node to the head at 10.2.0.11 "
                       "\\(Network is unreachable\\)"):
        runner._place_towards(lost, "10.2.0.11")
    assert lost.ip is None


def test_a_node_with_ray_ip_takes_it_without_asking_for_a_route():
    runner = Runner(config.from_mapping({"port": 6390}), [])
    node, = parse_nodes("gw.example:2201 ray_ip=10.1.0.21\n")
    natted = RoutingHost("203.0.113.5", None, node)
    runner._place_towards(natted, "10.2.0.11")
    assert (natted.ip, natted.asked) == ("10.1.0.21", [])


def test_a_route_answer_that_is_not_json_fails_the_node_with_what_it_printed():
    runner = Runner(config.from_mapping({"port": 6390}), [])
    garbled = RoutingHost("203.0.113.5", None)
    garbled.run_node_script = lambda *args, what: SimpleNamespace(stdout="Welcome!\n",
                                                                  stderr="")
    with pytest.raises(StepError, match="the route lookup's answer is not JSON") as raised:
        runner._place_towards(garbled, "10.2.0.11")
    assert (raised.value.output, garbled.ip) == ("Welcome!\n", None)


def test_the_node_side_route_lookup_answers_on_loopback():
    answer = subprocess.run([sys.executable, "-c", source("node_state.py"), "route", "/x",
                             "127.0.0.1", "6390"], capture_output=True, text=True, check=True)
    assert json.loads(answer.stdout) == {"target": "127.0.0.1", "source": "127.0.0.1"}
