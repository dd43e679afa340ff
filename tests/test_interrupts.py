"""Ctrl-C ends a task at once wherever it is, not only inside a fan-out step: exit 130, the
one-line message, no traceback, nothing left running on the controller.

Each test sends SIGINT to a real `inv` process while it waits on something that would not
end by itself for a long time: a host that accepts TCP but never speaks SSH, a package
index that accepts and never answers."""

import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from conftest import REPO

MESSAGE = "interrupted: the steps under way were cut off"


class SilentServer:
    """Listens on 127.0.0.1, accepts connections and never says a word."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = []

    def wait_connection(self, timeout=120):
        """The first connection made to it (by the process under test)."""
        self.listener.settimeout(timeout)
        connection, _ = self.listener.accept()
        self.accepted.append(connection)
        return connection

    def close(self):
        for connection in self.accepted:
            connection.close()
        self.listener.close()


@pytest.fixture
def silent():
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def env(tmp_path):
    """A controller environment of its own: files under tmp_path, a pip config of none."""
    home = f"/var/tmp/rt-int-{os.getpid()}"
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("INVOKE_", "PIP_"))}
    environment.update({
        "INVOKE_RAY_NODES": str(tmp_path / "nodes.txt"),
        "INVOKE_RAY_INSTALLATION_DIRECTORY": home,
        "INVOKE_RAY_AUTH_TOKEN_FILE": str(tmp_path / "auth_token"),
        "INVOKE_RAY_KNOWN_HOSTS": str(tmp_path / "known_hosts"),
        "INVOKE_RAY_WHEEL_CACHE": str(tmp_path / "wheels"),
        "INVOKE_RAY_CONNECT_TIMEOUT": "120",
        "PIP_CONFIG_FILE": os.devnull,
    })
    yield environment
    shutil.rmtree(home, ignore_errors=True)


def interrupt(process, timeout=60):
    """SIGINT, as Ctrl-C sends it; returns (exit status, output). A process still running
    after ``timeout`` seconds is killed (what it waits on would last 75 s or more: the
    connect timeout, pip's retries), so a Ctrl-C that did not end it fails the test."""
    process.send_signal(signal.SIGINT)
    try:
        output = process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        output = process.communicate()[0]
    return process.returncode, output


def closed(connection, timeout=10):
    """Whether the other end closes ``connection`` (its process ended) within ``timeout``."""
    connection.settimeout(timeout)
    try:
        while connection.recv(1 << 16):
            pass
    except socket.timeout:
        return False
    return True


def start(env, *args):
    return subprocess.Popen([sys.executable, "-m", "invoke", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)


def assert_interrupted(status, output):
    assert status == 130, output
    assert MESSAGE in output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output


def test_ctrl_c_while_connecting(env, silent, tmp_path):
    (tmp_path / "nodes.txt").write_text(f"root@127.0.0.1:{silent.port}\n")
    process = start(env, "status")
    silent.wait_connection()
    assert_interrupted(*interrupt(process))


def test_ctrl_c_during_the_wheel_download_kills_pip(env, silent, tmp_path):
    (tmp_path / "nodes.txt").write_text("localhost\n")
    env.update(INVOKE_RAY_WHEELHOUSE="1", PIP_INDEX_URL=f"http://127.0.0.1:{silent.port}/")
    process = start(env, "install")
    pip = silent.wait_connection()
    assert_interrupted(*interrupt(process))
    assert closed(pip), "pip still runs after the interrupt"


def test_ctrl_c_while_update_asks_the_index(env, silent, tmp_path):
    (tmp_path / "nodes.txt").write_text("localhost\n")
    env.update(PIP_INDEX_URL=f"http://127.0.0.1:{silent.port}/")
    process = start(env, "update")
    silent.wait_connection()
    assert_interrupted(*interrupt(process))
