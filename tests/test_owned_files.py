"""What ray-tasks writes and deletes in an installation directory, run on this machine (no
root, no Ray): the real probe and the real steps through the local host, on a temporary
directory that already holds a user's files of the same names."""

import hashlib
import os
import socket
import stat
import subprocess
from types import SimpleNamespace

import pytest

from ray_tasks import config, installing, ownership, ray_commands, ray_nodes, worker_code
from ray_tasks.cluster_record import ClusterRecord
from ray_tasks.hosts import LocalHost, StepError
from ray_tasks.inventory import Node
from ray_tasks.node_scripts import node_state
from ray_tasks.tasks.commands import run_command

USER_FILES = {
    "code/thesis/main.py": "print('my thesis')\n",
    "venvs/thesis-env/pyvenv.cfg": "home = /usr/bin\n",
    "tmp/x": "scratch\n",
    "wheels/y.whl": "not really a wheel\n",
    "cluster.json": '{"mine": true}\n',
    "auth_token": "my own token\n",
    "runtest.py": "print('my test')\n",
}

FAKE_PYTHON = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/../calls"
[ -e "$(dirname "$0")/../pip-fails" ] && exit 1
exit 0
"""


def user_home(tmp_path):
    """An installation directory full of the user's own files; returns (home, their sums)."""
    home = tmp_path / "home"
    for name, text in USER_FILES.items():
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_text(text)
    os.symlink("venvs/thesis-env", home / "venv")
    os.symlink("code/thesis", home / "worker_code")
    return str(home), sums(home)


def sums(home):
    """sha256 of every file and the target of every symlink under ``home``, outside
    ray-tasks' own directory."""
    found = {}
    for folder, dirs, files in os.walk(home):
        dirs[:] = [name for name in dirs if name != ray_commands.STATE_DIR]
        for name in files + [name for name in dirs if os.path.islink(os.path.join(folder, name))]:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                found[path] = "-> " + os.readlink(path)
            else:
                with open(path, "rb") as handle:
                    found[path] = hashlib.sha256(handle.read()).hexdigest()
    return found


def probed(home, **settings):
    """The local host as a task sees it: probed, with ``settings``."""
    host = LocalHost(Node("localhost"), config.from_mapping(
        dict(settings, installation_directory=home, python="python3")))
    host.probe()
    return host


def fake_venv(home, name, record=None):
    """A complete venv ray-tasks built (its python only logs how it was called), current."""
    venv = ray_commands.state_path(home, "venvs", name)
    os.makedirs(os.path.join(venv, "bin"))
    python = os.path.join(venv, "bin", "python")
    with open(python, "w") as handle:
        handle.write(FAKE_PYTHON)
    os.chmod(python, stat.S_IRWXU)
    open(os.path.join(venv, ".complete"), "w").close()
    if record:
        with open(os.path.join(venv, ray_commands.REQUIREMENTS_RECORD), "w") as handle:
            handle.write(record + "\n")
    subprocess.run(["sh", "-c", ray_commands.relink_venv(home, venv)], check=True)
    return venv


def pip_calls(venv):
    try:
        with open(os.path.join(venv, "calls")) as handle:
            return handle.read().splitlines()
    except FileNotFoundError:
        return []


def worker_dir(tmp_path, value=1, requirements="tiny-package==1.0\n"):
    """The bundle of a worker directory (with a requirements.txt unless None)."""
    folder = tmp_path / "worker"
    folder.mkdir(exist_ok=True)
    (folder / "job.py").write_text(f"VALUE = {value}\n")
    if requirements is not None:
        (folder / "requirements.txt").write_text(requirements)
    return worker_code.pack(str(folder))


def test_a_directory_not_made_by_ray_tasks_is_never_taken(tmp_path):
    home, _ = user_home(tmp_path)
    host = probed(home)
    assert (host.state.state_dir, host.state.setup_env) == ("absent", "absent")
    ownership.claim(host)
    assert probed(home).state.state_dir == "ours"
    os.rename(ray_commands.state_path(home), os.path.join(home, "elsewhere"))
    os.mkdir(ray_commands.state_path(home))
    assert probed(home).state.state_dir == "foreign"
    claimed = subprocess.run(["sh", "-c", ray_commands.claim(home)], capture_output=True)
    assert claimed.returncode != 0
    assert not os.path.exists(ray_commands.state_path(home, ray_commands.OWNER_FILE))


def test_setup_env_is_written_only_over_its_own(tmp_path):
    home, _ = user_home(tmp_path)
    setup_env = os.path.join(home, "setup-env.sh")
    with open(setup_env, "w") as handle:
        handle.write("# Written by ray-tasks: source it to use this node's Ray.\n")
    host = probed(home)
    assert host.state.setup_env == "legacy"
    ownership.claim(host)
    record = ClusterRecord(head="10.0.0.1:6379")
    ray_nodes.write_cluster_files(host, record, "t0ken", local=False)
    host = probed(home)
    assert host.state.setup_env == "ours"
    ray_nodes.write_cluster_files(host, ClusterRecord(head="10.0.0.2:6379"), "t0ken",
                                  local=False)
    host = probed(home)
    assert host.state.setup_env == "ours"
    assert "10.0.0.2:6379" in open(setup_env).read()
    assert not os.path.exists(setup_env + ".new")

    with open(setup_env, "a") as handle:
        handle.write("export MINE=1\n")
    host = probed(home)
    assert host.state.setup_env == "foreign"


def test_preflight_names_the_foreign_setup_env(tmp_path, capsys):
    home, _ = user_home(tmp_path)
    with open(os.path.join(home, "setup-env.sh"), "w") as handle:
        handle.write("export MY_PROJECT=1\n")
    host = probed(home)

    class Runner:
        def fail(self, failed, message):
            self.failed = (failed, message)

    runner = Runner()
    ownership.check(runner, [host])
    assert runner.failed == (host, f"{home}/setup-env.sh is there but ray-tasks did not write "
                             "it (or it was changed since): move it away or choose another "
                             "ray.installation_directory")


def test_clean_up_removes_only_what_ray_tasks_listed_in_its_own_directory(tmp_path):
    home, before = user_home(tmp_path)
    host = probed(home)
    ownership.claim(host)
    for name in ("ray-2.58.0-py3.11.2", "ray-2.59.0-py3.11.2"):
        fake_venv(home, name)
    host = probed(home)
    settings = config.from_mapping({"version": "2.60.0"})
    host.state.new_venv = fake_venv(home, installing.wanted_venv(host, settings))
    installing.switch_venv(host)
    assert sorted(os.listdir(ray_commands.state_path(home, "venvs"))) == [
        "ray-2.59.0-py3.11.2", f"ray-2.60.0-py{host.facts.python}"]

    for value in (1, 2):
        bundle = worker_dir(tmp_path, value, requirements=None)
        worker_code.sync(probed(home), bundle, offline=False)
    assert os.listdir(ray_commands.state_path(home, "code")) == [bundle.digest]
    assert sums(home) == before


def test_requirements_follow_the_venv_and_a_failed_pip_is_repaired(tmp_path):
    home, _ = user_home(tmp_path)
    ownership.claim(probed(home))
    bundle = worker_dir(tmp_path)
    first = fake_venv(home, "ray-2.60.0-py3.11.2")
    message = worker_code.sync(probed(home), bundle, offline=True)
    assert message.endswith("; requirements.txt installed")
    calls = pip_calls(first)
    assert calls == ["-m pip install -q --disable-pip-version-check --no-index --find-links "
                     f"{home}/.ray-tasks/wheels -r {home}/.ray-tasks/worker_code/requirements.txt"]
    assert probed(home).state.requirements == bundle.requirements_digest
    assert worker_code.sync(probed(home), bundle, offline=True) == "worker code up to date"

    second = fake_venv(home, "ray-2.59.0-py3.11.2")
    open(os.path.join(second, "pip-fails"), "w").close()
    with pytest.raises(StepError):
        worker_code.sync(probed(home), bundle, offline=True)
    assert probed(home).state.requirements is None
    os.remove(os.path.join(second, "pip-fails"))
    assert worker_code.sync(probed(home), bundle, offline=True) == "requirements.txt installed"
    assert len(pip_calls(second)) == 2 and len(pip_calls(first)) == 1
    assert probed(home).state.requirements == bundle.requirements_digest


def test_a_new_venv_gets_the_worker_requirements_before_the_switch(tmp_path):
    home, _ = user_home(tmp_path)
    ownership.claim(probed(home))
    fake_venv(home, "ray-2.60.0-py3.11.2")
    worker_code.sync(probed(home), worker_dir(tmp_path), offline=True)
    host = probed(home)
    assert host.facts.worker_requirements == worker_dir(tmp_path).requirements_digest
    commands = []
    host.run = lambda command, what, **kwargs: commands.append(command) or \
        SimpleNamespace(exited=0, stdout="uv 0.13.9\n", stderr="")
    installing.build_venv(host, config.from_mapping({"version": "2.59.0", "wheelhouse": True}))
    venv = f"{home}/.ray-tasks/venvs/ray-2.59.0-py{host.facts.python}"
    sources = f"--no-index --find-links {home}/.ray-tasks/wheels -r {home}/.ray-tasks/" \
              "worker_code/requirements.txt"
    build = commands[1]  # after uv came up
    assert f"{venv}/bin/uv pip install -q --compile-bytecode --python {venv}/bin/python " \
           f"{sources}" in build
    assert f"{venv}/bin/python -m pip install -q --disable-pip-version-check {sources}" in build
    assert build.index("ray[default]==2.59.0") < build.index("requirements.txt")


@pytest.mark.parametrize("extras, name", [
    ("default", "ray-2.60.0-py3.11.7"),
    ("", "ray-2.60.0-py3.11.7-core"),
    ("serve,default", "ray-2.60.0-py3.11.7-default+serve"),
    ("Default , Serve", "ray-2.60.0-py3.11.7-default+serve"),
])
def test_the_venv_name_holds_the_extras(extras, name):
    assert ray_commands.venv_name("2.60.0", "3.11.7", extras) == name


def test_changing_the_extras_is_not_up_to_date():
    class Probed:
        facts = SimpleNamespace(python="3.11.7", ray="2.60.0")
        state = SimpleNamespace(venv_name="ray-2.60.0-py3.11.7")

    assert installing.up_to_date(Probed, config.from_mapping({"version": "2.60.0"}))
    assert not installing.up_to_date(Probed, config.from_mapping({"version": "2.60.0",
                                                                  "extras": ""}))
    assert not installing.up_to_date(Probed, config.from_mapping({"version": "2.59.0"}))


def test_node_state_names_match_the_command_builder():
    for name in ("MARKER", "STATE_DIR", "OWNER_FILE", "SETUP_ENV", "SETUP_ENV_RECORD",
                 "REQUIREMENTS_RECORD"):
        assert getattr(node_state, name) == getattr(ray_commands, name)


def test_the_longest_home_leaves_room_for_rays_socket_with_a_7_digit_pid():
    """Bind Ray's longest socket path for an installation directory of exactly the allowed
    length, with the largest PID: the kernel accepts it, and refuses one character more."""
    base = f"/tmp/rt{os.getpid()}"
    home = base + "x" * (ray_commands.MAX_HOME_LENGTH - len(base))
    session = "session_2026-11-27_08-25-06_123456_4194303"
    try:
        for extra, fits in (("", True), ("y", False)):
            sockets = os.path.join(ray_commands.temp_dir(home + extra), session, "sockets")
            os.makedirs(sockets)
            with socket.socket(socket.AF_UNIX) as plasma:
                if fits:
                    plasma.bind(os.path.join(sockets, "plasma_store"))
                else:
                    with pytest.raises(OSError):
                        plasma.bind(os.path.join(sockets, "plasma_store"))
    finally:
        subprocess.run(["rm", "-rf", "--", home, home + "y"])


def test_exec_sources_only_the_setup_env_ray_tasks_wrote(tmp_path):
    home, _ = user_home(tmp_path)
    host = probed(home)
    ownership.claim(host)
    ray_nodes.write_cluster_files(host, ClusterRecord(head="10.0.0.1:6379"), "t0ken",
                                  local=False)
    outputs = {}
    run_command(host, f"echo $RAY_ADDRESS > {tmp_path}/ours", outputs)
    assert outputs == {host.node: ""}
    assert (tmp_path / "ours").read_text() == "10.0.0.1:6379\n"

    with open(os.path.join(home, "setup-env.sh"), "w") as handle:
        handle.write(f"touch {tmp_path}/ran\nexport RAY_ADDRESS=users-own\n")
    run_command(host, f"echo $RAY_ADDRESS > {tmp_path}/theirs", outputs)
    assert (tmp_path / "theirs").read_text() == "\n"
    assert not (tmp_path / "ran").exists()
