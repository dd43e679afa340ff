"""The embedded default: a nodes file holding only localhost runs every task here, no SSH."""

import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO, WHEEL_CACHE, run_inv
from host_state import node_path


@pytest.fixture
def local_env(tmp_path):
    home = f"/var/tmp/rt-local-{os.getpid()}"
    nodes = tmp_path / "nodes.txt"
    nodes.write_text("localhost\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("INVOKE_")}
    env.update({
        "INVOKE_RAY_NODES": str(nodes),
        "INVOKE_RAY_INSTALLATION_DIRECTORY": home,
        "INVOKE_RAY_AUTH_TOKEN_FILE": str(tmp_path / "auth_token"),
        "INVOKE_RAY_WHEELHOUSE": "1",
        "INVOKE_RAY_WHEEL_CACHE": WHEEL_CACHE,
        "INVOKE_RAY_OBJECT_STORE_MEMORY": "100M",
        "INVOKE_RAY_PORT": "6390",
        "INVOKE_RAY_KNOWN_HOSTS": str(tmp_path / "known_hosts"),
    })
    yield env, home
    run_inv("stop", env=env)
    shutil.rmtree(home, ignore_errors=True)


def our_processes(home):
    """PIDs of processes started for this installation (found by their environment)."""
    marker = f"RAY_TASKS_HOME={home}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if marker in handle.read().split(b"\0"):
                    pids.append(int(entry))
        except (OSError, ValueError):
            continue
    return pids


def test_install_start_test_stop_chain_on_localhost(local_env, tmp_path):
    env, home = local_env
    result = run_inv("install", "start", "--num-workers=2", "test", "stop", env=env)
    assert result.returncode == 0, result.output
    assert "self-test ok" in result.output
    assert f"source {home}/setup-env.sh && python" in result.output
    assert re.search(r"^stop: 1 node ok in \d+\.\d s$", result.output, re.M), result.output
    assert not (tmp_path / "known_hosts").exists(), "localhost needs no SSH"
    assert our_processes(home) == []
    assert oct(os.stat(node_path("auth_token", home=home)).st_mode & 0o777) == "0o600"


def test_driver_attaches_through_setup_env(local_env):
    env, home = local_env
    result = run_inv("install", "start", "--num-workers=2", env=env)
    assert result.returncode == 0, result.output
    assert our_processes(home)
    driver = (f". {home}/setup-env.sh && python {REPO}/example_ray_code/driver.py")
    out = subprocess.run(["sh", "-c", driver], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 nodes, 2 CPUs" in out.stdout
    assert "hello task 0 from" in out.stdout and "greetings v1" in out.stdout
    stopped = run_inv("stop", env=env)
    assert stopped.returncode == 0 and our_processes(home) == []
