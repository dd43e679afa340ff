"""Ownership on a real node (SSH, Ray): the installation directory is the login home, already
full of the user's own files under the names ray-tasks used to write there. The whole
lifecycle leaves every one of them byte for byte, a setup-env.sh that is not ray-tasks' stops
a task before anything is written, and the worker code's requirements follow the venv
across an update.

The scenarios share one host and run in order."""

import base64
import hashlib
import json
import os
import shlex
import shutil
import zipfile

import pytest

from conftest import NEW_RAY, OLD_RAY, WHEEL_CACHE, namespaced_cluster, run_inv, user_env
from host_state import node_path, run_driver, setup_env, venv_versions

HOME = "/root"
USER_FILES = {
    "code/thesis/main.py": "print('my thesis')\n",
    "venvs/thesis-env/pyvenv.cfg": "home = /usr/bin\n",
    "venvs/thesis-env/bin/python": "#!/bin/sh\necho not a python\n",
    "tmp/x": "scratch\n",
    "wheels/y.whl": "not really a wheel\n",
    "cluster.json": '{"my": "cluster"}\n',
    "auth_token": "my own token\n",
    "runtest.py": "print('my own test')\n",
    "cluster_check.py": "print('my own check')\n",
}
USER_LINKS = {"venv": "venvs/thesis-env", "worker_code": "code/thesis"}
REQUIREMENT = "rt_own_req"

SUMS = """
import hashlib, json, os, sys
found = {}
for folder, dirs, files in os.walk(sys.argv[1]):
    dirs[:] = sorted(name for name in dirs if name != ".ray-tasks")
    for name in files + dirs:
        path = os.path.join(folder, name)
        if os.path.islink(path):
            found[path] = "-> " + os.readlink(path)
        elif os.path.isfile(path):
            with open(path, "rb") as handle:
                found[path] = hashlib.sha256(handle.read()).hexdigest()
        else:
            found[path] = "directory"
print(json.dumps(found))
"""


def sums(cluster, host):
    """Every entry under the home (outside .ray-tasks): a file's sha256, a link's target."""
    result = cluster.ssh(host, f"python3 -c {shlex.quote(SUMS)} {HOME}")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def fill_home(cluster, host):
    """The user's own files, in the names ray-tasks wrote at the top level before."""
    steps = []
    for name, text in USER_FILES.items():
        path = f"{HOME}/{name}"
        steps.append(f"mkdir -p {shlex.quote(os.path.dirname(path))} && "
                     f"printf %s {shlex.quote(text)} > {shlex.quote(path)}")
    steps += [f"ln -s {target} {HOME}/{name}" for name, target in USER_LINKS.items()]
    result = cluster.ssh(host, " && ".join(steps))
    assert result.returncode == 0, result.stderr


def build_wheel(folder):
    """A tiny pure-Python wheel (no index, no build tools): module rt_own_req."""
    os.makedirs(folder)
    info = f"{REQUIREMENT}-1.0.dist-info"
    files = {
        f"{REQUIREMENT}.py": b'VALUE = "requirement ok"\n',
        f"{info}/METADATA": b"Metadata-Version: 2.1\nName: rt-own-req\nVersion: 1.0\n",
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                         b"Tag: py3-none-any\n",
    }
    record = "".join(
        f"{name},sha256="
        f"{base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip('=')},"
        f"{len(data)}\n" for name, data in files.items()) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(os.path.join(folder, f"{REQUIREMENT}-1.0-py3-none-any.whl"),
                         "w") as wheel:
        for name, data in [*files.items(), (f"{info}/RECORD", record.encode())]:
            wheel.writestr(name, data)


@pytest.fixture(scope="module")
def home_node():
    """One host whose installation directory is the login home, full of the user's files:
    (cluster, host, env, worker directory, the wheel's folder)."""
    with namespaced_cluster(1, tag=(os.getpid() + 11) % 10000) as cluster:
        host = cluster.hosts[0]
        fill_home(cluster, host)
        env = dict(user_env(cluster, [host.ip]), INVOKE_RAY_INSTALLATION_DIRECTORY=HOME)
        wheels = os.path.join(cluster.base, "requirement-wheels")
        build_wheel(wheels)
        worker = os.path.join(cluster.base, "worker")
        os.makedirs(worker)
        with open(os.path.join(worker, "requirements.txt"), "w") as handle:
            handle.write(f"--no-index\n--find-links {wheels}\nrt-own-req==1.0\n")
        set_value(worker, "v1")
        try:
            yield cluster, host, env, worker, wheels
        finally:
            run_inv("stop", env=env)
            for name in os.listdir(WHEEL_CACHE):
                folder = os.path.join(WHEEL_CACHE, name)
                if os.path.exists(os.path.join(folder, f"{REQUIREMENT}-1.0-py3-none-any.whl")):
                    shutil.rmtree(folder)


def set_value(worker, value):
    with open(os.path.join(worker, "probe_mod.py"), "w") as handle:
        handle.write(f"VALUE = {value!r}\n")


def test_a_foreign_setup_env_stops_install_and_start_before_anything_is_written(home_node):
    cluster, host, env, worker, _ = home_node
    mine = "export MY_PROJECT=1\n"
    assert cluster.ssh(host, f"printf %s {shlex.quote(mine)} > {setup_env(HOME)}").returncode == 0
    before = sums(cluster, host)
    for args in (("install",), ("start", f"--worker-dir={worker}")):
        result = run_inv(*args, env=env)
        assert result.returncode == 1, result.output
        assert (f"[{host.ip}] FAILED: {HOME}/setup-env.sh is there but ray-tasks did not write "
                "it (or it was changed since): move it away or choose another "
                "ray.installation_directory") in result.output
        assert "Traceback" not in result.output, result.output
        assert sums(cluster, host) == before
        assert cluster.ssh(host, f"test -e {node_path(home=HOME)}").returncode != 0
    assert cluster.ssh(host, f"mv {setup_env(HOME)} {HOME}/my-setup-env.sh").returncode == 0


def test_lifecycle_in_the_login_home_runs_the_cluster(home_node):
    cluster, host, env, worker, wheels = home_node
    installed = run_inv("install", env=env)
    assert installed.returncode == 0, installed.output
    started = run_inv("start", f"--worker-dir={worker}", env=env)
    assert started.returncode == 0, started.output
    assert "requirements.txt installed" in started.output
    assert run_driver(cluster, home=HOME) == {host.name: {"value": "v1", "cpus": 2.0}}
    assert run_driver(cluster, REQUIREMENT, "VALUE", home=HOME)[host.name]["value"] == \
        "requirement ok"

    set_value(worker, "v2")
    restarted = run_inv("restart-workers", f"--worker-dir={worker}", env=env)
    assert restarted.returncode == 0, restarted.output
    assert run_driver(cluster, home=HOME)[host.name]["value"] == "v2"
    shutil.rmtree(wheels)  # from now on the node has the requirement's wheel only in .ray-tasks


def test_the_worker_requirements_still_import_after_an_update(home_node):
    cluster, host, env, _, _ = home_node
    updated = run_inv("update", f"--version={OLD_RAY}", env=env)
    assert updated.returncode == 0, updated.output
    assert venv_versions(cluster, home=HOME) == {host.name: OLD_RAY}
    assert run_driver(cluster, REQUIREMENT, "VALUE", home=HOME)[host.name]["value"] == \
        "requirement ok"
    assert run_driver(cluster, home=HOME)[host.name]["value"] == "v2"


def test_every_user_file_survives_stop_and_a_second_install(home_node):
    cluster, host, env, _, _ = home_node
    assert run_inv("stop", env=env).returncode == 0
    again = run_inv("install", env=env)
    assert again.returncode == 0, again.output
    assert f"now on ray {NEW_RAY}" in again.output
    found = sums(cluster, host)
    expected = {f"{HOME}/{name}": hashlib.sha256(text.encode()).hexdigest()
                for name, text in USER_FILES.items()}
    expected.update({f"{HOME}/{name}": f"-> {target}" for name, target in USER_LINKS.items()})
    expected[f"{HOME}/my-setup-env.sh"] = hashlib.sha256(b"export MY_PROJECT=1\n").hexdigest()
    assert {path: found.get(path) for path in expected} == expected
    assert sorted(cluster.ssh(host, f"ls {HOME}/venvs {HOME}/code").stdout.split()) == \
        sorted([f"{HOME}/code:", f"{HOME}/venvs:", "thesis", "thesis-env"])
