"""The day-two verbs on two namespaced hosts running real Ray: submit (and jobs, job-logs),
logs after a node's raylet was killed, attach through a pseudo-terminal.

The scenarios share one cluster and run in order; each checks the hosts' or Ray's real
state, not ray-tasks' own words alone."""

import os
import pty
import re
import select
import time

import pytest

from as_user import REPO, inv_command
from conftest import namespaced_cluster, run_inv, user_env

TAG = (os.getpid() + 113) % 10000


@pytest.fixture(scope="module")
def day_two():
    with namespaced_cluster(2, tag=TAG) as cluster:
        env = user_env(cluster, [f"{host.ip}  # {host.name}" for host in cluster.hosts])
        try:
            started = run_inv("install", "start", env=env)
            assert started.returncode == 0, started.output
            yield cluster, env
        finally:
            run_inv("stop", env=env)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    return path


def job_id(output):
    found = re.findall(r"job (raysubmit_\w+) submitted", output)
    assert found, output
    return found[0]


def test_submit_streams_the_output_and_exits_with_the_jobs_status(day_two):
    cluster, env = day_two
    script = write(os.path.join(cluster.base, "jobs", "fails.py"),
                   "import sys\nprint('hello from the job', sys.argv[1:])\nsys.exit(3)\n")
    result = run_inv("submit", script, "--args=one 'two words'", env=env)
    assert result.returncode == 3, result.output
    assert "hello from the job ['one', 'two words']" in result.output
    ident = job_id(result.output)
    assert f"job {ident} FAILED" in result.output
    token = open(env["INVOKE_RAY_AUTH_TOKEN_FILE"]).read().strip()
    assert token not in result.output
    listed = run_inv("jobs", env=env)
    assert listed.returncode == 0, listed.output
    assert re.search(rf"^{ident}\s+FAILED\s", listed.output, re.M), listed.output


def test_working_dir_modules_import_in_the_job_and_its_tasks(day_two):
    cluster, env = day_two
    folder = os.path.join(cluster.base, "jobdir")
    write(os.path.join(folder, "helper_mod.py"), "VALUE = 'from the working dir'\n")
    write(os.path.join(folder, "main.py"), (
        "import socket, ray, helper_mod\n"
        "ray.init()\n"
        "@ray.remote(num_cpus=0)\n"
        "def value():\n"
        "    import helper_mod\n"
        "    return helper_mod.VALUE\n"
        "print('driver:', helper_mod.VALUE)\n"
        "print('task:', ray.get(value.remote()))\n"))
    result = run_inv("submit", os.path.join(folder, "main.py"), f"--working-dir={folder}",
                     env=env)
    assert result.returncode == 0, result.output
    assert "driver: from the working dir" in result.output
    assert "task: from the working dir" in result.output
    ident = job_id(result.output)
    logs = run_inv("job-logs", ident, env=env)
    assert logs.returncode == 0 and "task: from the working dir" in logs.output, logs.output
    head = cluster.hosts[0]
    left = cluster.ssh(head, "ls -A /root/ray/.ray-tasks/jobs").stdout
    assert left.strip() == "", "the uploaded copy stays on the head"


def test_logs_of_a_node_whose_raylet_was_killed(day_two):
    cluster, env = day_two
    victim = cluster.hosts[1]
    pid = cluster.ssh(victim, "pgrep -x raylet").stdout.strip()
    assert pid.isdigit(), pid
    cluster.ssh(victim, f"kill -9 {pid}")
    time.sleep(3)
    out = os.path.join(cluster.base, "collected")
    result = run_inv("logs", f"--out={out}", "--grep=raylet", env=env)
    assert result.returncode == 0, result.output
    logs = os.path.join(out, victim.ip)
    names = {name for _root, _dirs, files in os.walk(logs) for name in files}
    assert "raylet.out" in names, names
    assert f"errors on {victim.ip}:" in result.output, result.output
    row = re.search(rf"^{re.escape(victim.ip)}\s+\d+\s+[\d.]+ MiB\s+not running\s+(.+)$",
                    result.output, re.M)
    assert row and row.group(1) != "-", result.output


def run_on_terminal(args, env, typed, until, timeout=180):
    """Run ``args`` on a pseudo-terminal, type ``typed`` once it printed its first line,
    read until ``until`` shows (or it ends). Returns what the terminal showed."""
    pid, terminal = pty.fork()
    if pid == 0:
        os.chdir(REPO)
        os.execve(args[0], args, env)
    shown, typed_yet, deadline = b"", False, time.monotonic() + timeout
    while time.monotonic() < deadline and until.encode() not in shown:
        if not typed_yet and b"\n" in shown:
            os.write(terminal, typed.encode())
            typed_yet = True
        if select.select([terminal], [], [], 1)[0]:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    os.close(terminal)
    return shown.decode(errors="replace")


def test_attach_gives_a_shell_where_ray_status_works(day_two):
    cluster, env = day_two
    shown = run_on_terminal(inv_command("attach"), env,
                            "hostname; ray status; echo attach-$((6*7))\n", until="attach-42")
    assert "attach-42" in shown, shown
    assert f"{cluster.hosts[0].name}\r\n" in shown, shown
    assert "Active:" in shown and "node_" in shown, shown


def test_attach_without_a_terminal_says_so(day_two):
    _cluster, env = day_two
    result = run_inv("attach", env=env)
    assert result.returncode == 2
    assert "attach needs a terminal" in result.output
