"""The pure logic of submit, logs and attach: job files and outcomes, log packing on a node
(the node script on a fake Ray temp dir), error lines, flags, the ssh command line."""

import io
import json
import os
import subprocess
import sys
import tarfile
import types

import pytest

from ray_tasks import jobs, log_collection, ray_commands, report, ssh_command
from ray_tasks.inventory import Node
from ray_tasks.node_scripts import ray_logs


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    return path


def test_a_job_without_working_dir_uploads_the_script_alone(tmp_path):
    script = write(str(tmp_path / "dir" / "train.py"), "print(1)\n")
    write(str(tmp_path / "dir" / "other.py"), "")
    files = jobs.pack_job(script, None, "--epochs 3 --name 'a b'")
    assert files.script == "train.py" and files.args == ("--epochs", "3", "--name", "a b")
    with tarfile.open(fileobj=io.BytesIO(files.archive)) as tar:
        assert tar.getnames() == ["train.py"]


def test_a_job_with_working_dir_runs_the_script_by_its_path_inside(tmp_path):
    script = write(str(tmp_path / "work" / "sub" / "main.py"), "")
    write(str(tmp_path / "work" / "helper.py"), "")
    files = jobs.pack_job(script, str(tmp_path / "work"), "")
    assert files.script == "sub/main.py" and files.args == ()
    with tarfile.open(fileobj=io.BytesIO(files.archive)) as tar:
        assert sorted(tar.getnames()) == ["helper.py", "sub/main.py"]


@pytest.mark.parametrize("script, working_dir, args, error", [
    ("missing.py", None, "", "is not a file"),
    ("outside.py", "work", "", "is not inside --working-dir"),
    ("outside.py", None, "'unbalanced", "--args"),
    ("outside.py", "nowhere", "", "is not a directory"),
])
def test_job_mistakes_are_one_line(tmp_path, script, working_dir, args, error):
    write(str(tmp_path / "outside.py"), "")
    os.makedirs(tmp_path / "work")
    with pytest.raises(jobs.JobError, match=error):
        jobs.pack_job(str(tmp_path / script), working_dir and str(tmp_path / working_dir),
                      args)


@pytest.mark.parametrize("state, expected", [
    ({"status": "SUCCEEDED", "message": "done", "exit_code": 0}, (0, "job j SUCCEEDED")),
    ({"status": "FAILED", "message": "exit code 3", "exit_code": 3},
     (3, "job j FAILED: exit code 3")),
    ({"status": "STOPPED", "message": "", "exit_code": None}, (1, "job j STOPPED")),
])
def test_the_exit_status_is_the_jobs(state, expected):
    assert jobs.outcome("j", state) == expected


def test_job_rows_show_the_python_as_written_newest_last():
    python = ray_commands.venv_link("/r") + "/bin/python"
    rows = jobs.job_rows([
        {"id": "b", "status": "RUNNING", "entrypoint": f"{python} b.py x",
         "start_time": 2000, "end_time": None},
        {"id": "a", "status": "FAILED", "entrypoint": "echo hi", "start_time": 1000,
         "end_time": 3500},
    ], "/r")
    assert [row[0] for row in rows] == ["a", "b"]
    assert rows[0][3:] == ("2.5", "echo hi") and rows[1][3:] == ("-", "python b.py x")


def test_job_ids_are_rays_form():
    first, second = jobs.new_job_id(), jobs.new_job_id()
    assert first != second and first.startswith("raysubmit_") and len(first) == 26


@pytest.mark.parametrize("line, error", [
    ("[2026-01-31 23:59:59,999 E 123 456] (raylet) node_manager.cc:1: lost", True),
    ("[2026-01-31 23:59:59,999 F 123 456] Check failed: x", True),
    ("[2026-01-31 23:59:59,999 I 123 456] (raylet) started", False),
    ("2026-01-31 23:59:59,999\tERROR worker.py:1 -- boom", True),
    ("Traceback (most recent call last):", True),
    ("INFO all fine, no ERRORS here", False),
])
def test_error_lines(line, error):
    assert ray_logs.is_error_line(line) is error


def fake_temp_dir(root):
    """A Ray temp dir with an old session and the newest one (session_latest)."""
    old = write(os.path.join(root, "session_1", "logs", "raylet.out"), "old\n")
    os.utime(old, (1, 1))
    write(os.path.join(root, "session_2", "logs", "raylet.out"), "r" * 100 + "\nEND\n")
    write(os.path.join(root, "session_2", "logs", "worker-1.err"), "w\n")
    os.symlink("session_2", os.path.join(root, "session_latest"))
    return root


def bundle(temp_dir, archive, since, max_bytes):
    script = os.path.join(os.path.dirname(ray_logs.__file__), "ray_logs.py")
    result = subprocess.run([sys.executable, script, "bundle", temp_dir, archive, str(since),
                             str(max_bytes)], capture_output=True, text=True, check=True)
    with tarfile.open(archive) as tar:
        contents = {member.name: tar.extractfile(member).read() for member in tar}
    return json.loads(result.stdout), contents, os.stat(archive).st_mode & 0o777


def test_the_newest_session_is_packed_privately(tmp_path):
    temp_dir = fake_temp_dir(str(tmp_path / "tmp"))
    packed, contents, mode = bundle(temp_dir, str(tmp_path / "a.tgz"), 0, 10**6)
    assert sorted(contents) == ["session_2/logs/raylet.out", "session_2/logs/worker-1.err"]
    assert packed["files"] == 2 and not packed["cut"] and mode == 0o600


def test_since_reads_every_session_in_the_window(tmp_path):
    temp_dir = fake_temp_dir(str(tmp_path / "tmp"))
    _packed, contents, _mode = bundle(temp_dir, str(tmp_path / "a.tgz"), 3600, 10**6)
    assert "session_1/logs/raylet.out" not in contents and len(contents) == 2
    _packed, contents, _mode = bundle(temp_dir, str(tmp_path / "b.tgz"), 10**10, 10**6)
    assert "session_1/logs/raylet.out" in contents


def test_the_size_cap_keeps_the_newest_bytes_and_says_what_it_left(tmp_path):
    temp_dir = fake_temp_dir(str(tmp_path / "tmp"))
    os.utime(os.path.join(temp_dir, "session_2", "logs", "worker-1.err"), (5, 5))
    packed, contents, _mode = bundle(temp_dir, str(tmp_path / "a.tgz"), 0, 10)
    assert contents == {"session_2/logs/raylet.out": b"rrrrrr\nEND\n"[-10:]}
    assert packed["cut"] == ["session_2/logs/raylet.out"] and packed["left_out"] == 1
    note = log_collection.cap_note(packed, 10)
    assert "cut to their last bytes: session_2/logs/raylet.out" in note
    assert "1 older files" in note and "--max-size" in note


def test_no_session_packs_nothing(tmp_path):
    packed, contents, _mode = bundle(str(tmp_path / "none"), str(tmp_path / "a.tgz"), 0, 10)
    assert packed["files"] == 0 and contents == {}


def test_scan_groups_error_lines_by_component(tmp_path):
    write(str(tmp_path / "s" / "logs" / "raylet.out"), "ok\n[2026-01-01 00:00:00,0 E 1 2] x\n")
    write(str(tmp_path / "s" / "logs" / "python-core-worker-1.log"), "ERROR a\nERROR b\n")
    write(str(tmp_path / "s" / "logs" / "gcs_server.out"), "fine\n")
    found = log_collection.scan(str(tmp_path))
    assert found == {"raylet": [("s/logs/raylet.out", 2, "[2026-01-01 00:00:00,0 E 1 2] x")],
                     "workers": [("s/logs/python-core-worker-1.log", 1, "ERROR a"),
                                 ("s/logs/python-core-worker-1.log", 2, "ERROR b")]}


def test_an_archive_from_a_node_writes_only_below_its_folder(tmp_path):
    archive = str(tmp_path / "evil.tgz")
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("../escape.txt", "/abs.txt", "ok/fine.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    log_collection.unpack(archive, str(tmp_path / "out"))
    assert os.listdir(tmp_path / "out") == ["ok"]
    assert not os.path.exists(tmp_path / "escape.txt")


@pytest.mark.parametrize("text, seconds", [("", 0), ("90", 90), ("90s", 90), ("10m", 600),
                                           ("2h", 7200), ("1d", 86400)])
def test_durations(text, seconds):
    assert log_collection.parse_duration(text) == seconds


@pytest.mark.parametrize("parse, text", [
    (log_collection.parse_duration, "10 minutes"), (log_collection.parse_duration, "0m"),
    (log_collection.parse_max_size, "lots"), (log_collection.parse_pattern, "(")])
def test_bad_log_flags_are_one_line(parse, text):
    with pytest.raises(log_collection.LogsError):
        parse(text)


def test_sizes_and_folder_names():
    assert log_collection.parse_max_size("") == 100 * 2**20
    assert log_collection.parse_max_size("500K") == 500 * 1024
    assert log_collection.folder_name(Node("fd00::1", "me", 2222)) == "me@_fd00__1__2222"
    assert log_collection.folder_name(Node("10.0.0.1")) == "10.0.0.1"
    assert log_collection.folder_name(Node("../x")) == "x"


def test_host_lines_prefix_each_complete_line():
    stream = io.StringIO()
    lines = report.HostLines("h1", stream)
    lines.write("a\nb")
    lines.write("c\n")
    assert stream.getvalue() == "[h1] | a\n[h1] | bc\n"


def settings(**values):
    base = {"ssh_config": "~/.ssh/config", "username": None, "key_file": None,
            "known_hosts": "/k/known_hosts", "host_key_policy": "accept-new",
            "connect_timeout": 10}
    return types.SimpleNamespace(**{**base, **values})


def test_ssh_args_match_the_connection():
    args = ssh_command.ssh_args(Node("h", "ann", 2222),
                                settings(key_file="/k/id", host_key_policy="strict"), "CMD")
    assert args == ["ssh", "-t", "-l", "ann", "-p", "2222", "-i", "/k/id",
                    "-o", "IdentitiesOnly=yes", "-o", 'UserKnownHostsFile="/k/known_hosts"',
                    "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10",
                    "--", "h", "CMD"]
    plain = ssh_command.ssh_args(Node("h"), settings(username="bob"), "CMD")
    assert plain[:4] == ["ssh", "-t", "-l", "bob"] and "-p" not in plain


def test_ssh_args_use_the_configured_ssh_config(tmp_path):
    config = write(str(tmp_path / "config"), "Host x\n")
    assert ssh_command.config_args(config) == ["-F", config]
    assert ssh_command.config_args(str(tmp_path / "missing")) == ["-F", os.devnull]
    assert ssh_command.config_args("~/.ssh/config") == []


def test_the_interactive_shell_says_when_ray_is_not_set_up(tmp_path):
    shell_path = write(str(tmp_path / "fake_shell"), "#!/bin/sh\necho \"shell $*\"\n")
    os.chmod(shell_path, 0o755)
    result = subprocess.run(["sh", "-c", ray_commands.interactive_shell(str(tmp_path / "r"))],
                            capture_output=True, text=True,
                            env={"SHELL": shell_path, "HOME": str(tmp_path), "PATH": "/bin"})
    assert result.stdout == "shell -i\n"
    assert "no setup-env.sh of ray-tasks in" in result.stderr
