"""The Python API for a project's own tasks.py, without nodes: ray-tasks' tasks added to a
collection, hooks that run once in a chain, the settings, Fabric groups built as ray-tasks
connects (opening is left out: tests/test_user_project.py connects for real)."""

import socket
import threading
import time

import fabric
import invoke
import pytest
from fabric.exceptions import GroupException
from invoke import Collection, Executor, task
from invoke.parser import Parser

import ray_tasks
from ray_tasks import config, groups, hooks
from ray_tasks.hostkeys import AcceptNew
from ray_tasks.hosts import SshHost


@task(pre=[hooks.install, hooks.start], post=[hooks.stop])
def train(c):
    """A project's task."""


def project(**configured):
    collection = Collection(train)
    collection.configure({"ray": configured})
    return ray_tasks.add_to(collection)


def planned(collection, *argv):
    """The names of the tasks Invoke would run, in order, for the command line ``argv``."""
    parsed = Parser(contexts=collection.to_contexts()).parse_argv(list(argv))
    executor = Executor(collection, invoke.Config())
    calls = executor.dedupe(executor.expand_calls(executor.normalize(parsed)))
    return [call.task.name for call in calls]


def test_add_to_puts_every_task_beside_the_project_s_own_and_keeps_its_settings():
    collection = project(worker_dir="code")
    assert set(collection.tasks) == {"train", *ray_tasks.namespace.tasks}
    ray = collection.configuration()["ray"]
    assert ray == dict(config.DEFAULTS, worker_dir="code")


def test_add_to_with_a_name_makes_a_sub_collection():
    collection = ray_tasks.add_to(Collection(train), name="ray")
    assert set(collection.tasks) == {"train"}
    assert collection["ray.restart-workers"] is ray_tasks.restart_workers
    assert collection.configuration()["ray"] == config.DEFAULTS


def test_a_chain_naming_the_hooks_runs_each_task_once():
    collection = project()
    expected = ["install", "selftest", "start", "train", "stop"]
    assert planned(collection, "install", "start", "train", "stop") == expected
    assert planned(collection, "train") == expected


def test_settings_of_a_context_no_collection_configured_are_the_defaults():
    c = invoke.Context(invoke.Config())
    assert ray_tasks.settings(c) == config.from_mapping({})
    c.config.ray.parallel = "0"
    with pytest.raises(invoke.exceptions.Exit, match="parallel: must be"):
        ray_tasks.settings(c)


def test_in_cluster_env_sources_setup_env_in_the_installation_directory():
    c = invoke.Context(invoke.Config(overrides={"ray": {"installation_directory": "/opt/r"}}))
    command = ray_tasks.in_cluster_env(c, "python -m train")
    assert command.startswith("cd /opt/r ") and ". ./setup-env.sh; python -m train" in command


def test_a_nodes_file_of_localhost_is_refused_in_one_line(tmp_path):
    (tmp_path / "nodes.txt").write_text("localhost\n")
    c = invoke.Context(invoke.Config(overrides={"ray": {"nodes": str(tmp_path / "nodes.txt")}}))
    with pytest.raises(invoke.exceptions.Exit, match="lists localhost, which ray-tasks runs "
                                                     "without SSH"):
        ray_tasks.nodes_group(c)


def test_groups_connect_as_ray_tasks_does(tmp_path, monkeypatch):
    monkeypatch.setattr(SshHost, "open", lambda host: None)
    (tmp_path / "nodes.txt").write_text("alice@node1:2201\nnode2\nnode3\n")
    key = tmp_path / "key"
    key.write_text("")
    c = invoke.Context(invoke.Config(overrides={"ray": {
        "nodes": str(tmp_path / "nodes.txt"), "hosts": "node1,node2", "username": "bob",
        "key_file": str(key), "known_hosts": str(tmp_path / "known_hosts"),
        "ssh_config": str(tmp_path / "none"), "parallel": "3", "connect_timeout": "7",
        "command_timeout": "99"}}))
    group = ray_tasks.nodes_group(c)
    assert isinstance(group, groups.BoundedThreadingGroup) and group.parallel == 3
    assert [(each.user, each.host, each.port) for each in group] == [
        ("alice", "node1", 2201), ("bob", "node2", 22)]
    for each in group:
        assert each.connect_timeout == 7 and each.config.timeouts.command == 99
        assert each.connect_kwargs["key_filename"] == [str(key)]
        assert isinstance(each.client._policy, AcceptNew)
        assert not each.config.run.hide and not each.config.run.warn
    serial = ray_tasks.nodes_group(c, serial=True)
    assert type(serial) is fabric.SerialGroup and len(serial) == 2


class Counting:
    """A stand-in connection whose run() records how many run at once."""

    running = 0
    most = 0
    lock = threading.Lock()

    def __init__(self, fails=False):
        self.fails = fails

    def run(self, command):
        with Counting.lock:
            Counting.running += 1
            Counting.most = max(Counting.most, Counting.running)
        time.sleep(0.05)
        with Counting.lock:
            Counting.running -= 1
        if self.fails:
            raise OSError("gone")
        return command


def test_the_threading_group_works_on_at_most_parallel_hosts_at_once():
    connections = [Counting() for _ in range(6)]
    group = groups.BoundedThreadingGroup.from_connections(connections)
    group.parallel = 2
    results = group.run("true")
    assert Counting.most == 2
    assert list(results) == connections and set(results.values()) == {"true"}


def test_the_threading_group_raises_fabric_s_group_exception_naming_the_failures():
    connections = [Counting(), Counting(fails=True)]
    with pytest.raises(GroupException) as raised:
        groups.BoundedThreadingGroup.from_connections(connections).run("true")
    assert list(raised.value.result.failed) == [connections[1]]
    assert raised.value.result[connections[0]] == "true"


def test_a_missing_key_file_is_named_before_connecting(tmp_path):
    (tmp_path / "nodes.txt").write_text("node1\n")
    c = invoke.Context(invoke.Config(overrides={"ray": {
        "nodes": str(tmp_path / "nodes.txt"), "key_file": str(tmp_path / "gone")}}))
    with pytest.raises(invoke.exceptions.Exit, match=f"key_file {tmp_path}/gone does not "
                                                     "exist"):
        ray_tasks.head_connection(c)


def test_a_node_that_cannot_be_reached_ends_the_task_naming_it(tmp_path):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    (tmp_path / "nodes.txt").write_text(f"127.0.0.1:{port}\n")
    c = invoke.Context(invoke.Config(overrides={"ray": {
        "nodes": str(tmp_path / "nodes.txt"), "known_hosts": str(tmp_path / "known_hosts"),
        "ssh_config": str(tmp_path / "none")}}))
    with pytest.raises(invoke.exceptions.Exit) as raised:
        ray_tasks.nodes_group(c)
    assert raised.value.code == 1
    assert str(raised.value.message).startswith(f"error: cannot connect: 127.0.0.1:{port}: "
                                                f"cannot connect to 127.0.0.1:{port}: ")
