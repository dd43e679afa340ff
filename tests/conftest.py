"""Shared fixtures: the namespaced multi-node cluster and a way to run `inv` as a user would."""

import contextlib
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from netns_cluster import NetnsCluster, unavailable_reason

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHEEL_CACHE = os.environ.get("RAY_TASKS_TEST_WHEELS", "/var/tmp/ray-tasks-test-wheels")
SCENARIO_TIMES = []


def run_inv(*args, env=None, cwd=REPO, timeout=1200, command=None):
    """Run `inv ARGS` (or another command) in a fresh process; returns CompletedProcess with
    the combined output in .output and the wall time in .seconds."""
    started = time.monotonic()
    result = subprocess.run(
        command or [sys.executable, "-m", "invoke", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    result.output = result.stdout + result.stderr
    result.seconds = time.monotonic() - started
    return result


def run_inv_on_terminal(*args, env, prompt, typed, timeout=900):
    """Run `inv ARGS` on a pseudo-terminal, as at an operator's keyboard: wait for ``prompt``,
    type ``typed`` and Enter. Returns (exit status, everything the terminal showed)."""
    pid, terminal = pty.fork()
    if pid == 0:
        os.chdir(REPO)
        os.execve(sys.executable, [sys.executable, "-m", "invoke", *args], env)
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
    return subprocess.Popen([sys.executable, "-m", "invoke", *args], cwd=REPO, env=env,
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
    cluster = NetnsCluster(count, tag=tag, bastion=bastion).start()
    try:
        yield cluster
    finally:
        cluster.close()


def user_env(cluster, node_lines):
    """The environment a user of a test cluster would set: nodes file, key, settings."""
    nodes = os.path.join(cluster.base, "nodes.txt")
    with open(nodes, "w") as handle:
        handle.write("# the test cluster: the first node is the head\n")
        handle.write("".join(f"{line}\n" for line in node_lines))
    env = dict(os.environ)
    env.update({
        "INVOKE_RAY_NODES": nodes,
        "INVOKE_RAY_KEY_FILE": cluster.key,
        "INVOKE_RAY_USERNAME": "root",
        "INVOKE_RAY_PYTHON": "/usr/bin/python3",
        "INVOKE_RAY_KNOWN_HOSTS": cluster.known_hosts,
        "INVOKE_RAY_AUTH_TOKEN_FILE": os.path.join(cluster.base, "auth_token"),
        "INVOKE_RAY_WHEELHOUSE": "1",
        "INVOKE_RAY_WHEEL_CACHE": WHEEL_CACHE,
        "INVOKE_RAY_OBJECT_STORE_MEMORY": "100M",
        "INVOKE_RAY_NUM_WORKERS": "2",
    })
    return env


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
