"""The node-side scoped stop, run on this machine: a process belongs to the cluster only by
its RAY_TASKS_HOME marker and only in the node's own PID namespace (a container or a test
host nested in the machine may run a cluster from the same path)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from ray_tasks.node_scripts import source

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
