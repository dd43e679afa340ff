"""Shared fixtures: the namespaced multi-node cluster and a way to run `inv` as a user would."""

import os
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


@pytest.fixture(scope="session")
def netns_cluster():
    """Three hosts (h1 head, h2, h3) reached over real SSH. Skips where namespaces cannot
    be built, except in CI (CI=true), where that is a failure."""
    reason = unavailable_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the multi-node tests, but: {reason}")
        pytest.skip(reason)
    cluster = NetnsCluster(3).start()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def cluster_env(netns_cluster):
    """The environment a user of the test cluster would set: nodes file, key, settings."""
    nodes = os.path.join(netns_cluster.base, "nodes.txt")
    with open(nodes, "w") as handle:
        handle.write("# the test cluster: h1 is the head\n")
        handle.write("".join(f"{host.ip}  # {host.name}\n" for host in netns_cluster.hosts))
    env = dict(os.environ)
    env.update({
        "INVOKE_RAY_NODES": nodes,
        "INVOKE_RAY_KEY_FILE": netns_cluster.key,
        "INVOKE_RAY_USERNAME": "root",
        "INVOKE_RAY_PYTHON": "/usr/bin/python3",
        "INVOKE_RAY_KNOWN_HOSTS": netns_cluster.known_hosts,
        "INVOKE_RAY_AUTH_TOKEN_FILE": os.path.join(netns_cluster.base, "auth_token"),
        "INVOKE_RAY_WHEELHOUSE": "1",
        "INVOKE_RAY_WHEEL_CACHE": WHEEL_CACHE,
        "INVOKE_RAY_OBJECT_STORE_MEMORY": "100M",
        "INVOKE_RAY_NUM_WORKERS": "2",
    })
    return env


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
