"""The node-side scoped stop, run on this machine: a process belongs to the cluster only by
its RAY_TASKS_HOME marker and only in the node's own PID namespace (a container or a test
host nested in the machine may run a cluster from the same path)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from ray_tasks.node_scripts import node_state, source

HOME = "/nonexistent/ray-tasks-scope-test"


def sleeper(*prefix, marker=HOME):
    """A long sleep whose environment carries the marker; ``prefix`` runs it elsewhere."""
    return subprocess.Popen([*prefix, "env", f"RAY_TASKS_HOME={marker}", "sleep", "300"],
                            stdin=subprocess.DEVNULL)


def wait_marked(process, nested=False, timeout=10):
    """Wait until the sleep carries the marker (nested: it is unshare's child)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = str(process.pid)
        try:
            if nested:
                with open(f"/proc/{pid}/task/{pid}/children") as handle:
                    pid = handle.read().split()[0]
            with open(f"/proc/{pid}/environ", "rb") as handle:
                if b"RAY_TASKS_HOME=" in handle.read():
                    return
        except (OSError, IndexError):
            pass
        time.sleep(0.02)
    raise AssertionError(f"{process.args} never carried the marker")


def alive(process):
    return process.poll() is None


def test_stop_ends_only_marked_processes_of_its_own_pid_namespace():
    if os.geteuid() != 0:
        pytest.skip("needs root (a nested PID namespace)")
    ours = sleeper()
    other_cluster = sleeper(marker=HOME + "-other")
    nested = sleeper("unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL")
    started = [ours, other_cluster, nested]
    try:
        for process in started:
            wait_marked(process, nested=process is nested)
        stopped = subprocess.run([sys.executable, "-c", source("node_state.py"), "stop", HOME],
                                 capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.startswith("stopped 1 processes")
        assert ours.wait(timeout=10) == -signal.SIGTERM
        assert alive(other_cluster) and alive(nested)
    finally:
        for process in started:
            process.kill()
            process.wait()


def marked(script, home):
    """``sh -c script`` with the marker of ``home`` in its environment."""
    return subprocess.Popen(["env", f"RAY_TASKS_HOME={home}", "sh", "-c", script],
                            stdin=subprocess.DEVNULL)


def run_stop(home, grace="1"):
    return subprocess.run([sys.executable, "-c", source("node_state.py"), "stop", home, grace],
                          capture_output=True, text=True, timeout=60)


def members(home):
    return [pid for pid, _, _ in node_state.cluster_processes(home)]


@pytest.fixture
def home():
    """A marker no other test (nor another checkout's run) uses; its processes are
    killed by PID afterwards."""
    path = f"/nonexistent/ray-tasks-stop-{os.getpid()}-{time.monotonic_ns()}"
    yield path
    for pid in members(path):
        os.kill(pid, signal.SIGKILL)


def wait_members(home, count, timeout=10):
    deadline = time.monotonic() + timeout
    while len(members(home)) < count:
        assert time.monotonic() < deadline, f"never {count} processes marked {home}"
        time.sleep(0.02)


def test_stop_kills_what_ignores_sigterm_and_stops_late_children(home):
    ignores = marked('trap "" TERM; exec sleep 300', home)
    forks_late = marked('trap "sleep 300 & exit 0" TERM; sleep 300 & wait', home)
    wait_members(home, 3)
    stopped = run_stop(home)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert ignores.wait(timeout=10) == -signal.SIGKILL
    assert forks_late.wait(timeout=10) == 0
    assert members(home) == [], "the child started during the stop is stopped too"
    assert "killed after the grace period" in stopped.stdout


def test_stop_never_kills_a_pid_that_left_the_cluster_meanwhile(home):
    """A PID reused by another program between the scan and SIGKILL: here the process
    itself exec-s a program without the marker when asked to stop, then ignores SIGTERM."""
    leaves = marked('trap "exec env -u RAY_TASKS_HOME sleep 300" TERM; sleep 300 & wait', home)
    try:
        wait_members(home, 2)
        stopped = run_stop(home)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert leaves.poll() is None, "a process without the marker was killed"
        assert not node_state.belongs(leaves.pid, home)
    finally:
        leaves.kill()
        leaves.wait()


def test_belongs_needs_the_marker_of_this_home_now(home):
    ours = marked("exec sleep 300", home)
    other = marked("exec sleep 300", home + "-other")
    try:
        wait_members(home, 1)
        assert node_state.belongs(ours.pid, home)
        assert not node_state.belongs(other.pid, home)
        assert not node_state.belongs(os.getpid(), home)
    finally:
        for process in (ours, other):
            process.kill()
            process.wait()


def test_stop_is_bounded_when_processes_keep_appearing(home):
    """A spawner outside the cluster starts a marked process every 10 ms: the stop gives up
    after a few rounds and says what still runs (exit 1), instead of looping."""
    spawner = subprocess.Popen(["sh", "-c", f"while :; do env RAY_TASKS_HOME={home} sleep 30 & "
                                            "sleep 0.01; done"], stdin=subprocess.DEVNULL)
    try:
        wait_members(home, 1)
        started = time.monotonic()
        stopped = run_stop(home)
        assert stopped.returncode == 1, stopped.stdout + stopped.stderr
        assert "still running after 3 rounds" in stopped.stdout
        assert time.monotonic() - started < 30
    finally:
        spawner.kill()
        spawner.wait()


def worker(title, home, then=None):
    """A process titled like a Ray worker (``ray::IDLE``, ``ray::task``) of ``home``; with
    ``then``, it becomes a worker titled ``then`` after half a second (the same process)."""
    script = (f"exec -a {title} bash -c 'sleep 0.5; exec -a {then} sleep 300'" if then
              else f"exec -a {title} sleep 300")
    return subprocess.Popen(["env", f"RAY_TASKS_HOME={home}", "bash", "-c", script],
                            stdin=subprocess.DEVNULL)


def replace_idle(home, *args):
    return subprocess.run([sys.executable, "-c", source("node_state.py"),
                           "replace-idle-workers", home, *args],
                          capture_output=True, text=True, timeout=60)


def test_replace_idle_workers_ends_each_worker_once_idle_and_names_the_busy(home):
    idle, busy = worker("ray::IDLE", home), worker("ray::step", home)
    finishing = worker("ray::step", home, then="ray::IDLE")
    wait_members(home, 3)
    replaced = replace_idle(home, "3")
    assert replaced.returncode == 3, replaced.stdout + replaced.stderr
    assert replaced.stdout.strip() == "busy workers: ray::step"
    assert idle.wait(timeout=10) == -signal.SIGKILL
    assert finishing.wait(timeout=10) == -signal.SIGKILL
    assert alive(busy)
    forced = replace_idle(home, "0", "--force")
    assert forced.returncode == 0 and "replaced 1 worker processes (1 busy)" in forced.stdout
    assert busy.wait(timeout=10) == -signal.SIGKILL


def test_the_ray_release_is_read_from_the_venvs_dist_info(tmp_path):
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    (site / "rich-15.0.0.dist-info").mkdir(parents=True)
    (tmp_path / "lib" / "ray-9.9.9.dist-info").mkdir()  # not in a site-packages
    assert node_state.ray_version(str(tmp_path)) is None
    (site / "ray-2.60.0.dist-info").mkdir()
    assert node_state.ray_version(str(tmp_path)) == "2.60.0"
    assert node_state.ray_version(str(tmp_path / "missing")) is None
