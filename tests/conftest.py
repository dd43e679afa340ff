"""Shared fixtures: the namespaced multi-node cluster, and `inv` run as a user would (the
plain helpers, shared with the benchmarks, are in as_user.py)."""

import contextlib
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from as_user import REPO, WHEEL_CACHE, inv_command, run_inv, user_env  # noqa: F401 (for tests)
from netns_cluster import NetnsCluster, unavailable_reason

SCENARIO_TIMES = []


def run_inv_on_terminal(*args, env, prompt, typed, timeout=900):
    """Run `inv ARGS` on a pseudo-terminal, as at an operator's keyboard: wait for ``prompt``,
    type ``typed`` and Enter. Returns (exit status, everything the terminal showed)."""
    pid, terminal = pty.fork()
    if pid == 0:
        os.chdir(REPO)
        os.execve(sys.executable, inv_command(*args), env)
    shown, answered, deadline = b"", False, time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not answered and prompt.encode() in shown:
            os.write(terminal, typed.encode() + b"\n")
            answered = True
        if not select.select([terminal], [], [], 1)[0]:
            continue
        try:
            chunk = os.read(terminal, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    else:
        os.kill(pid, 9)
    os.close(terminal)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return status, shown.decode(errors="replace")


def start_inv(env, *args):
    return subprocess.Popen(inv_command(*args), cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)


def read_until(process, text, timeout=300):
    """Lines of the process's output up to the first containing ``text``."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"never saw {text!r} in:\n{''.join(lines)}")


@contextlib.contextmanager
def namespaced_cluster(count, tag=None, bastion=False):
    """``count`` hosts reached over real SSH (only through a bastion host if ``bastion``),
    removed afterwards. Skips where namespaces cannot be built, except in CI (CI=true),
    where that is a failure."""
    reason = unavailable_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the multi-node tests, but: {reason}")
        pytest.skip(reason)
    with NetnsCluster(count, tag=tag, bastion=bastion) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def netns_cluster():
    """Three hosts (h1 head, h2, h3) reached over real SSH."""
    with namespaced_cluster(3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def cluster_env(netns_cluster):
    """The environment a user of the three-host test cluster would set."""
    return user_env(netns_cluster, [f"{host.ip}  # {host.name}" for host in netns_cluster.hosts])


def pytest_runtest_logreport(report):
    if report.when == "call" and "multinode" in report.nodeid:
        SCENARIO_TIMES.append((report.nodeid.split("::")[-1], report.duration, report.outcome))


def pytest_terminal_summary(terminalreporter):
    if SCENARIO_TIMES:
        terminalreporter.write_sep("-", "multi-node scenario times")
        for name, seconds, outcome in SCENARIO_TIMES:
            terminalreporter.write_line(f"{seconds:8.1f}s  {outcome:7}  {name}")


NEW_RAY, OLD_RAY = "2.60.0", "2.59.0"


@pytest.fixture(scope="module")
def running(netns_cluster, cluster_env):
    """The test cluster with Ray NEW_RAY installed and running (stopped afterwards)."""
    for args in (("install", f"--version={NEW_RAY}"), ("start",)):
        result = run_inv(*args, env=cluster_env)
        assert result.returncode == 0, result.output
    yield cluster_env
    run_inv("stop", env=cluster_env)
