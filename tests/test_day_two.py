"""The day-two verbs on two namespaced hosts running real Ray: submit (and jobs, job-logs),
logs after a node's raylet was killed, attach through a pseudo-terminal.

The scenarios share one cluster and run in order; each checks the hosts' or Ray's real
state, not ray-tasks' own words alone."""

import json
import os
import pty
import re
import select
import signal
import subprocess
import time

import jsonschema
import pytest

from as_user import REPO, inv_command
from conftest import namespaced_cluster, run_inv, user_env
from test_day_two_logic import write
from test_output import readme_schema

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


def test_submit_json_documents_the_failed_job_and_one_left_running(day_two):
    cluster, env = day_two
    script = write(os.path.join(cluster.base, "jobs", "fails_json.py"),
                   "import sys\nsys.exit(4)\n")
    failed = run_inv("submit", script, "--json", env=env)
    assert failed.returncode == 4, failed.output
    document = json.loads(failed.stdout)
    jsonschema.validate(document, readme_schema())
    assert document["ok"] is False and document["failed"] == [cluster.hosts[0].ip], document
    assert document["hosts"][0]["message"].startswith(f"job {document['job']} FAILED"), \
        document
    sleeper = write(os.path.join(cluster.base, "jobs", "sleeps.py"),
                    "import time\ntime.sleep(600)\n")
    left = run_inv("submit", sleeper, "--no-wait", "--json", env=env)
    assert left.returncode == 0, left.output
    document = json.loads(left.stdout)
    jsonschema.validate(document, readme_schema())
    assert document["ok"] and document["job"] in document["hosts"][0]["message"], document
    assert run_inv("job-stop", document["job"], env=env).returncode == 0


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
    assert "Raylet is terminated" in result.output


def read_until(process, text, timeout=120):
    """The lines ``process`` prints up to the first holding ``text`` (failing the test if
    it ends, or ``timeout`` seconds pass, first)."""
    lines, deadline = [], time.monotonic() + timeout
    while not lines or text not in lines[-1]:
        remaining = deadline - time.monotonic()
        assert remaining > 0 and select.select([process.stdout], [], [], remaining)[0], \
            "".join(lines)
        lines.append(process.stdout.readline())
        assert lines[-1], "".join(lines)
    return lines


def followers(cluster, host):
    """How many processes of `inv logs --follow` readers run on ``host``."""
    return int(cluster.ssh(host, "ps -eo args | grep -c '[f]ollow /root/ray/.ray-tasks/tmp' "
                                 "|| true").stdout)


def test_logs_follow_prints_new_error_lines_with_the_host_until_ctrl_c(day_two):
    cluster, env = day_two
    head = cluster.hosts[0]
    process = subprocess.Popen(inv_command("logs", "--follow"), cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               stdin=subprocess.DEVNULL)
    try:
        read_until(process, "following the Ray error streams")
        time.sleep(2)  # the followers have taken each log's size
        cluster.ssh(head, "echo 'ERROR follow-marker-42' >> "
                          "/root/ray/.ray-tasks/tmp/session_latest/logs/raylet.err")
        shown = read_until(process, "follow-marker-42")[-1]
        assert shown.startswith(f"[{head.ip}]") and "raylet.err" in shown, shown
        assert followers(cluster, head)
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0]
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0 and "stopped following" in output, output
    deadline = time.monotonic() + 30
    while followers(cluster, head):
        assert time.monotonic() < deadline, "the node's follower outlived the task"
        time.sleep(1)


def on_terminal(args, env, steps, until_exit=False, timeout=180):
    """Run ``args`` on a pseudo-terminal as at an operator's keyboard: for each (text,
    keys) of ``steps``, wait until ``text`` shows, then type ``keys``; then, with
    ``until_exit``, read until it ends, else kill it. Returns (its exit status, None when
    killed; what the terminal showed)."""
    pid, terminal = pty.fork()
    if pid == 0:
        os.chdir(REPO)
        os.execve(args[0], args, env)
    shown, deadline, steps = b"", time.monotonic() + timeout, list(steps)
    while (steps or until_exit) and time.monotonic() < deadline:
        if steps and steps[0][0].encode() in shown:
            os.write(terminal, steps.pop(0)[1].encode())
            continue
        if select.select([terminal], [], [], 1)[0]:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # the terminal closed: the program ended
                break
            if not chunk:
                break
            shown += chunk
    if steps or not until_exit:
        os.kill(pid, 9)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    os.close(terminal)
    return (None if status == -9 else status), shown.decode(errors="replace")


def job_status(env, ident):
    listed = run_inv("jobs", env=env)
    found = re.search(rf"^{ident}\s+(\w+)\s", listed.output, re.M)
    assert found, listed.output
    return found.group(1)


def write_ticker(cluster):
    return write(os.path.join(cluster.base, "jobs", "ticker.py"),
                 "import time\nfor i in range(600):\n    print('tick', i, flush=True)\n"
                 "    time.sleep(1)\n")


def test_ctrl_c_on_a_terminal_stops_the_job_when_asked(day_two):
    cluster, env = day_two
    status, shown = on_terminal(inv_command("submit", write_ticker(cluster)), env, [
        ("tick 1", "\x03"), ("[s]top / [l]eave", "s\n")], until_exit=True)
    assert status == 1, shown
    ident = job_id(shown)
    assert f"job {ident} STOPPED" in shown
    assert job_status(env, ident) == "STOPPED"


def test_ctrl_c_without_a_terminal_leaves_the_job_running(day_two):
    cluster, env = day_two
    process = subprocess.Popen(inv_command("submit", write_ticker(cluster)), cwd=REPO,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, stdin=subprocess.DEVNULL)
    lines = read_until(process, "tick 1")
    process.send_signal(signal.SIGINT)
    output = "".join(lines) + process.communicate(timeout=60)[0]
    assert process.returncode == 130, output
    ident = job_id(output)
    assert f"job {ident} left running" in output
    assert f"inv job-logs {ident} --follow" in output
    assert job_status(env, ident) == "RUNNING"
    stopped = run_inv("job-stop", ident, env=env)
    assert stopped.returncode == 0, stopped.output


def test_attach_gives_a_shell_where_ray_status_works(day_two):
    cluster, env = day_two
    _status, shown = on_terminal(inv_command("attach"), env, [
        ("\n", "hostname; ray status; echo attach-$((6*7))\n"), ("attach-42", "")])
    assert "attach-42" in shown, shown
    assert f"{cluster.hosts[0].name}\r\n" in shown, shown
    assert "Active:" in shown and "node_" in shown, shown


def test_attach_without_a_terminal_says_so(day_two):
    _cluster, env = day_two
    result = run_inv("attach", env=env)
    assert result.returncode == 2
    assert "attach needs a terminal" in result.output
