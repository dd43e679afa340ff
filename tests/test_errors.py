"""No traceback, for any input: every bad setting, from any layer, is one line and exit 2
before anything is contacted or written; a defect in a step fails that host with one line
and leaves its traceback in a private log file."""

import os
import re
import stat

import paramiko
import pytest
from invoke.exceptions import Exit

from conftest import run_inv
from ray_tasks import auth_token, config, tracebacks
from ray_tasks.hostkeys import KnownHosts
from ray_tasks.hosts import LocalHost
from ray_tasks.inventory import Node
from ray_tasks.runner import Runner
from ray_tasks.user_errors import user_errors


@pytest.fixture
def sandbox(tmp_path):
    """A user with a fresh home, a localhost nodes file, and a stand-in for the nodes'
    Python that records any contact (every task's first command runs it)."""
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "nodes.txt").write_text("localhost\n")
    python = tmp_path / "python3"
    python.write_text(f"#!/bin/sh\ntouch {tmp_path / 'contacted'}\nexit 1\n")
    python.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if not key.startswith("INVOKE_")}
    env.update(HOME=str(home), INVOKE_RAY_NODES=str(tmp_path / "nodes.txt"),
               INVOKE_RAY_PYTHON=str(python),
               INVOKE_RAY_INSTALLATION_DIRECTORY=str(tmp_path / "installation"))
    return tmp_path, env


def refused(sandbox, *args, env=None, yaml=None):
    """Run ``inv ARGS`` in the sandbox; check it ended in one error line, exit 2, with
    nothing contacted or written. Returns the line."""
    tmp_path, base = sandbox
    flags = []
    if yaml is not None:
        (tmp_path / "config.yaml").write_text(yaml)
        flags = ["-f", str(tmp_path / "config.yaml")]
    result = run_inv(*flags, *args, env=dict(base, **(env or {})))
    assert result.returncode == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert not (tmp_path / "contacted").exists()
    assert not (tmp_path / "installation").exists()
    assert list((tmp_path / "home").iterdir()) == []
    return lines[0]


@pytest.mark.parametrize("args, env, yaml, message", [
    (("status",), {"INVOKE_RAY_PORT": "0"}, None, "port: must be 1-63536, got 0"),
    (("status",), None, "ray:\n  port: 70000\n", "port: must be 1-63536, got 70000"),
    (("start", "--num-workers=abc"), None, None, "num_workers: 'abc' is not a whole number"),
    (("start", "--num-workers=2.9"), None, None, "num_workers: '2.9' is not a whole number"),
    (("start",), {"INVOKE_RAY_NUM_WORKERS": "0"}, None, "num_workers: must be at least 1"),
    (("start",), None, "ray:\n  num_workers: -2\n", "num_workers: must be at least 1, got -2"),
    (("start",), None, "ray:\n  num_workers: 2.9\n", "num_workers: 2.9 is not a whole number"),
    (("restart-workers", "--num-workers=2.9"), None, None, "num_workers: '2.9' is not a"),
    (("status",), {"INVOKE_RAY_PARALLEL": "abc"}, None, "parallel: 'abc' is not a whole"),
    (("status",), None, "ray:\n  connect_timeout: 0.5\n", "connect_timeout: 0.5 is not a"),
    (("status",), None, "ray:\n  join_timeout: true\n", "join_timeout: True is not a whole"),
    (("start",), {"INVOKE_RAY_OBJECT_STORE_MEMORY": "0"}, None, "below Ray's minimum of 75M"),
    (("start",), {"INVOKE_RAY_OBJECT_STORE_MEMORY": "0.5"}, None, "below Ray's minimum"),
    (("start",), {"INVOKE_RAY_OBJECT_STORE_MEMORY": "2X"}, None, "'2X' is not a size"),
    (("start",), None, "ray:\n  object_store_memory: 0.5\n", "below Ray's minimum"),
    (("install", "--version=2.60.0;x"), None, None, "version: '2.60.0;x' is not a Ray"),
    (("update", "--version=2.60.0;x"), None, None, "version: '2.60.0;x' is not a Ray"),
    (("install",), {"INVOKE_RAY_VERSION": "2.60.0;x"}, None, "is not a Ray release"),
    (("install",), None, "ray:\n  version: 2.60\n", "version: 2.6 was read as a number"),
    (("start",), {"INVOKE_RAY_START_ARGS": "--resources='{\"a\": 1}"}, None,
     "start_args: .* cannot be split like a shell would \\(No closing quotation\\)"),
    (("update",), {"INVOKE_RAY_HOSTS": "localhost"}, None, "unset ray.hosts \\('localhost'"),
    (("status",), {"INVOKE_RAY_INSTALLATION_DIRECTORY": ""}, None,
     "installation_directory is empty"),
    (("status",), {"INVOKE_RAY_INSTALLATION_DIRECTORY": "ray"}, None,
     "installation_directory: 'ray' is relative"),
    (("status",), None, "ray:\n  installation_directory: ./r\n", "'./r' is relative"),
    (("status",), {"INVOKE_RAY_HOST_KEY_POLICY": "yolo"}, None, "host_key_policy: 'yolo'"),
    (("status",), None, "ray:\n  wheelhouse: maybe\n", "wheelhouse: 'maybe' is not true"),
    (("status",), None, "ray:\n  hosts: [a, b]\n", "hosts: expected a single value"),
    (("status",), {"INVOKE_RAY_NODES": ""}, None, "nodes is empty"),
    (("install", "status"), None, "ray:\n  parallel: 0\n", "parallel: must be at least 1"),
])
def test_bad_setting_is_one_line_before_anything_runs(sandbox, args, env, yaml, message):
    assert re.search(message, refused(sandbox, *args, env=env, yaml=yaml))


def test_update_hosts_from_the_environment_without_the_head_is_refused(sandbox):
    tmp_path, _ = sandbox
    (tmp_path / "nodes.txt").write_text("127.0.0.2:1\n127.0.0.3:1\n")
    line = refused(sandbox, "update", "--version=2.60",
                   env={"INVOKE_RAY_HOSTS": "127.0.0.3:1"})
    assert "update acts on every node" in line


def test_bad_nodes_files_are_one_line(sandbox):
    tmp_path, _ = sandbox
    (tmp_path / "nodes.txt").write_bytes(b"h\xe9te\n")
    assert "not UTF-8 text (byte 0xe9 at offset 1)" in refused(sandbox, "status")
    directory = str(tmp_path / "a-directory")
    os.mkdir(directory)
    line = refused(sandbox, "status", env={"INVOKE_RAY_NODES": directory})
    assert "cannot read it (Is a directory)" in line


def test_a_bad_node_setting_is_one_line_naming_file_line_before_any_ssh(sandbox):
    tmp_path, _ = sandbox
    (tmp_path / "nodes.txt").write_text("127.0.0.2:1 cpus=2\n127.0.0.3:1 cpus=two\n")
    line = refused(sandbox, "start")
    assert line == (f"error: {tmp_path / 'nodes.txt'}:2: cpus: 'two' is not a whole number "
                    "(0 or more) in '127.0.0.3:1 cpus=two'")


def test_known_hosts_that_cannot_be_read_is_one_line(sandbox):
    tmp_path, _ = sandbox
    (tmp_path / "nodes.txt").write_text("127.0.0.2:1\n")
    line = refused(sandbox, "status", env={"INVOKE_RAY_KNOWN_HOSTS": str(tmp_path)})
    assert f"known_hosts: cannot read {tmp_path} (Is a directory)" in line


@pytest.mark.parametrize("value, expected", [
    ("2.60", "2.60.0"), ("2.60.0", "2.60.0"), ("3", "3.0.0"), (" 2.9.3 ", "2.9.3"),
    ("2.10.0rc1", "2.10.0rc1"), ("3.0.0.dev0", "3.0.0.dev0"), ("02.060", "2.60.0"),
])
def test_versions_are_normalised(value, expected):
    assert config.from_mapping({"version": value}).version == expected


@pytest.mark.parametrize("value, expected", [
    ("10", 10), (10, 10), (10.0, 10), (" 7 ", 7),
])
def test_whole_numbers_from_any_layer(value, expected):
    assert config.from_mapping({"num_workers": value}).num_workers == expected


@pytest.mark.parametrize("value", ["~", "~/ray", "/opt/ray", "~/"])
def test_home_and_absolute_installation_directories_are_allowed(value):
    assert config.from_mapping({"installation_directory": value}).installation_directory \
        == value


def test_an_earlier_tasks_flag_is_checked_by_replace():
    settings = config.from_mapping({})
    with pytest.raises(config.ConfigError, match="num_workers: '2.9' is not a whole number"):
        config.replace(settings, num_workers="2.9")
    assert config.replace(settings, version="2.59").version == "2.59.0"


@pytest.fixture
def local_runner(tmp_path, monkeypatch):
    """A Runner over this machine (no probe), its log directory under a temporary home."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(tracebacks, "_path", None)
    settings = config.from_mapping({"installation_directory": str(tmp_path / "inst")})
    return Runner(settings, [Node("localhost")], probe=False)


def check_logged(tmp_path, capsys, runner, error_text):
    """The host failed with one line, the summary names the log, the log holds the
    traceback, private."""
    with pytest.raises(Exception) as ended:
        runner.finish("task")
    assert ended.value.code == 1
    out, err = capsys.readouterr()
    assert f"[localhost] FAILED: internal error: {error_text}\n" in out
    assert "Traceback" not in out + err
    logs = tmp_path / ".cache" / "ray-tasks" / "logs"
    (log,) = logs.iterdir()
    assert f"the full tracebacks are in {log}" in out
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and error_text in text
    return text


def test_a_step_that_raises_fails_its_host_and_logs_the_traceback(tmp_path, capsys,
                                                                  local_runner):
    def broken_step(host):
        return {}["no such fact"]

    with local_runner as runner:
        assert runner.each(broken_step).succeeded == []
    text = check_logged(tmp_path, capsys, local_runner, "KeyError: 'no such fact'")
    assert "broken_step" in text


def test_an_unexpected_error_while_connecting_is_logged(tmp_path, capsys, local_runner,
                                                        monkeypatch):
    def open_fails(host):
        raise ValueError("odd answer\nsecond line")

    monkeypatch.setattr(LocalHost, "open", open_fails)
    with local_runner as runner:
        assert runner.ready == []
    check_logged(tmp_path, capsys, local_runner, "ValueError: odd answer")


def test_controller_token_is_made_private(tmp_path):
    path = tmp_path / "config" / "ray-tasks" / "auth_token"
    token = auth_token.load_or_create(str(path))
    assert len(token) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert auth_token.load_or_create(str(path)) == token


@pytest.mark.parametrize("make, message", [
    (lambda path: path.mkdir(), "is not a file"),
    (lambda path: path.write_bytes("t\u00f6ken\n".encode()), "does not hold a token"),
    (lambda path: path.write_bytes(b"\xff\xfe\n"), "does not hold a token"),
    (lambda path: path.write_text("two words\n"), "does not hold a token"),
    (lambda path: path.write_text("\n"), "is empty: delete it"),
    (lambda path: (path.write_text("abc\n"), path.chmod(0o644)), "is open to others \\(mode "
                                                                  "0644\\): chmod 600"),
])
def test_unusable_token_file_is_one_line(tmp_path, make, message):
    path = tmp_path / "auth_token"
    make(path)
    if path.is_file() and "open to others" not in message:
        path.chmod(0o600)
    with pytest.raises(Exit) as stopped:
        with user_errors():
            auth_token.load_or_create(str(path))
    assert stopped.value.code == 2
    assert re.search(message, stopped.value.message)
    assert "\n" not in stopped.value.message


def test_known_hosts_lines_paramiko_cannot_read_are_skipped(tmp_path, capsys):
    key = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    other = "AAAAC3NzaC1lZDI1NTE5AAAAIKC8Fq/9+4Wg6+lbO4T9sWG9Q8QyXhRpG7qD1Q2cU4zN"
    path = tmp_path / "known_hosts"
    path.write_bytes(f"@cert-authority *.example ssh-ed25519 {key}\n"
                     f"@revoked * ssh-ed25519 {other}\n"
                     "h1 sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5\n"
                     "h2 ssh-ed25519 not-base64!\n\xe9\xff\n# comment\n"
                     f"h3,10.0.0.3  ssh-ed25519 {key}\n"
                     f"h4 ssh-ed25519 {other}\n".encode("latin-1"))
    known = KnownHosts(str(path), "accept-new")
    assert "1 @cert-authority line(s): skipped" in capsys.readouterr().out
    assert known.known.lookup("10.0.0.3")["ssh-ed25519"].get_base64() == key
    assert known.revoked == {("ssh-ed25519", other)}
    client = paramiko.SSHClient()
    known.trust(client, "h4", 22)
    assert client.get_host_keys().lookup("h4") is None


def test_a_probe_answer_that_is_not_json_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tracebacks, "_path", None)
    python = tmp_path / "python3"
    python.write_text("#!/bin/sh\necho 'Welcome to the node!'\n")
    python.chmod(0o755)
    settings = config.from_mapping({"installation_directory": str(tmp_path / "inst"),
                                    "python": str(python)})
    with Runner(settings, [Node("localhost")]) as runner:
        assert runner.ready == []
    out, err = capsys.readouterr()
    assert "[localhost] FAILED: the probe's answer is not JSON (does a login script print on " \
           "stdout?)\n" in out
    assert "[localhost] | Welcome to the node!" in err
    assert tracebacks.log_path() is None
