"""ray-tasks driven as its user would drive it on the test hosts: the environment they set
(nodes file, key, settings) and `inv` run in a fresh process. Used by the tests and the
benchmarks."""

import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHEEL_CACHE = os.environ.get("RAY_TASKS_TEST_WHEELS", "/var/tmp/ray-tasks-test-wheels")


def inv_command(*args):
    """The command line of `inv ARGS` with this Python."""
    return [sys.executable, "-m", "invoke", *args]


def run_inv(*args, env=None, cwd=REPO, timeout=1200, command=None):
    """Run `inv ARGS` (or another command) in a fresh process; returns CompletedProcess with
    the combined output in .output and the wall time in .seconds."""
    started = time.monotonic()
    result = subprocess.run(
        command or inv_command(*args),
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    result.output = result.stdout + result.stderr
    result.seconds = time.monotonic() - started
    return result


def user_env(cluster, node_lines, nodes_file="nodes.txt"):
    """The environment a user of a test cluster would set: nodes file (``nodes_file`` in
    the cluster's folder), key, settings."""
    nodes = os.path.join(cluster.base, nodes_file)
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
