"""uv or pip on the nodes, and install's recorded self-test, over the fake transport (the
orchestration) and this machine (the real commands): which one builds a venv, the fallback
to pip and what the node says; a second install reporting the recorded self-test."""

import os
import re
import subprocess

import pytest

from fake_hosts import HOME
from ray_tasks import config, ray_commands, uv_on_nodes, wheelhouse
from ray_tasks.hosts import LocalHost, StepError
from ray_tasks.inventory import Node
from test_orchestration import NEW, fake, inv, three  # noqa: F401 (fixtures)

UV = uv_on_nodes.release()
BUILD = re.compile(r"venvs/\S+/\.complete")
UV_UP = f"uv/{UV}/bin/uv --version"
SELFTEST = re.compile(r"bin/python \S+/runtest\.py")


def test_the_controller_pins_uv():
    with open(os.path.join(os.path.dirname(__file__), "..", "requirements.txt")) as handle:
        assert f"uv=={UV}\n" in handle.read()


def test_uv_comes_up_from_the_index_and_builds_byte_compiled_venvs(fake, inv):
    nodes = three(fake, None)
    ran = inv("install", f"--version={NEW}")
    assert ran.code == 0, ran.out + ran.err
    assert f"(uv {UV})" in ran.out
    for node in nodes:
        [up] = node.sent(UV_UP)
        assert f"-m pip install -q --disable-pip-version-check --only-binary=:all: uv=={UV}" \
            in up
        [build] = node.sent(BUILD)
        assert f"{HOME}/.ray-tasks/uv/{UV}/bin/uv venv -q --python python3 " in build
        python = f"{HOME}/.ray-tasks/venvs/ray-{NEW}-py3.11.7/bin/python"
        assert f"pip install -q --python {python} --compile-bytecode " in build
        assert f"pip install -q --python {python} pip && " in build
        assert "UV_CACHE_DIR=/opt/rt/.ray-tasks/uv-cache" in build
        assert "-m venv" not in build and node.ray == NEW


def test_other_uv_releases_are_removed_by_name_once_this_one_is_up(fake, inv):
    head, w2, w3 = three(fake, None)
    w2.uvs = ["0.1.0", "0.1.0.lock", UV, f"{UV}.lock"]
    assert inv("install", f"--version={NEW}").code == 0
    [up] = w2.sent(UV_UP)
    assert up.endswith(f"{UV_UP} && rm -rf -- {HOME}/.ray-tasks/uv/0.1.0 "
                       f"{HOME}/.ray-tasks/uv/0.1.0.lock")
    assert head.sent(UV_UP)[0].endswith(UV_UP)


def test_pip_builds_where_uv_does_not_come_up_and_the_node_says_why(fake, inv):
    head, w2, w3 = three(fake, None)
    w2.on(UV_UP, (126, "", f"sh: 1: {HOME}/.ray-tasks/uv/{UV}/bin/uv: Exec format error\n"))
    ran = inv("install", f"--version={NEW}")
    assert ran.code == 0, ran.out + ran.err
    assert f"[{w2.address}] ready: {HOME}/.ray-tasks/venvs/ray-{NEW}-py3.11.7 (pip (uv {UV} " \
           "did not come up here: sh: 1: " in ran.out and "Exec format error))" in ran.out
    [build] = w2.sent(BUILD)
    assert "python3 -m venv" in build and "-m pip install -q" in build
    assert " venv -q --python" not in build and w2.ray == NEW
    for node in (head, w3):
        assert " venv -q --python" in node.sent(BUILD)[0]


@pytest.fixture
def downloads(monkeypatch, tmp_path):
    """The controller's wheel downloads, faked: each requirement gets a folder with one
    wheel; a requirement in ``missing`` has none for the platform. Returns ``missing``."""
    missing = []

    def download(settings, facts, requirement, name):
        if name in missing:
            raise StepError(f"could not download the wheels of {name} on this machine")
        folder = tmp_path / "cache" / name
        folder.mkdir(parents=True, exist_ok=True)
        wheels = [f"uv-{UV}-py3-none-manylinux_2_17_x86_64.whl", "pip-25.3-py3-none-any.whl"] \
            if name.startswith("uv==") else [f"ray-{NEW}-cp311-cp311-manylinux2014_x86_64.whl"]
        for wheel in wheels:
            (folder / wheel).write_bytes(b"wheel")
        return str(folder), False

    monkeypatch.setattr(wheelhouse, "download", download)
    return missing


def test_the_wheelhouse_pushes_uv_with_the_wheels_and_the_node_unpacks_it(fake, inv,
                                                                         downloads):
    nodes = three(fake, None)
    ran = inv("install", f"--version={NEW}", "--wheelhouse")
    assert ran.code == 0, ran.out + ran.err
    for node in nodes:
        assert f"{HOME}/.ray-tasks/wheels/uv-{UV}-py3-none-manylinux_2_17_x86_64.whl" in \
            node.files
        assert f"{HOME}/.ray-tasks/wheels/pip-25.3-py3-none-any.whl" in node.files
        [up] = node.sent(UV_UP)
        assert "unpack_uv.py" in up and "pip install" not in up
        [build] = node.sent(BUILD)
        assert f"--no-index --find-links {HOME}/.ray-tasks/wheels " in build
        assert f"ray[default]=={NEW}" in build and " venv -q --python" in build
    assert f"(uv {UV})" in ran.out


def test_without_a_uv_wheel_for_the_platform_pip_builds_and_says_so(fake, inv, downloads):
    nodes = three(fake, None)
    downloads.append(f"uv=={UV}-and-pip")
    ran = inv("install", f"--version={NEW}", "--wheelhouse")
    assert ran.code == 0, ran.out + ran.err
    assert f"wheelhouse: no uv {UV} wheel for Python 3.11 on " in ran.out
    assert "could be downloaded: pip builds the venvs there" in ran.out
    for node in nodes:
        assert not node.sent("uv --version") and not node.sent("/wheels/uv-")
        assert "-m pip install -q --disable-pip-version-check --no-index" in \
            node.sent(BUILD)[0]
        assert node.ray == NEW


def test_a_second_install_reports_the_recorded_self_test_and_selftest_runs_it(fake, inv):
    head, w2, w3 = three(fake, None)
    assert inv("install", f"--version={NEW}").code == 0
    assert all(node.sent(SELFTEST) for node in (head, w2, w3))
    switch = re.compile(r"rm -f \S+/venvs/ray-\S+/\.selftest && ln -sfn ")
    assert all(node.sent(switch) for node in (head, w2, w3)), "a kept venv is tested again"
    fake.forget()
    w3.selftest = None  # this venv holds no record (its last self-test failed)
    again = inv("install", f"--version={NEW}")
    assert again.code == 0, again.out + again.err
    assert again.out.count(f"up to date (ray {NEW})") == 3
    assert f"[10.9.0.[1-2]] self-test ok (ray {NEW}) at 2026-11-27 10:00 UTC, as recorded: " \
           "not run again (inv selftest runs it)" in again.out
    assert not head.sent(SELFTEST) and not w2.sent(SELFTEST)
    assert w3.sent(SELFTEST) and not any(node.sent(BUILD) for node in (head, w2, w3))
    fake.forget()
    assert inv("selftest").code == 0
    assert all(node.sent(SELFTEST) for node in (head, w2, w3))


def local_host(home):
    host = LocalHost(Node("localhost"), config.from_mapping(
        {"installation_directory": home, "python": "python3"}))
    host.probe()
    return host


def test_the_venv_records_a_passed_self_test_and_forgets_it_when_one_fails(tmp_path):
    home = str(tmp_path)
    subprocess.run(["sh", "-c", ray_commands.claim(home)], check=True)
    venv = ray_commands.state_path(home, "venvs", "ray-2.60.0-py3")
    os.makedirs(venv)
    open(os.path.join(venv, ".complete"), "w").close()
    subprocess.run(["sh", "-c", ray_commands.relink_venv(home, venv)], check=True)
    assert local_host(home).facts.selftest is None
    passing = subprocess.run(["sh", "-c", ray_commands.recording_selftest(home, "true")])
    assert passing.returncode == 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", local_host(home).facts.selftest)
    failing = subprocess.run(["sh", "-c", ray_commands.recording_selftest(home, "false")])
    assert failing.returncode != 0 and local_host(home).facts.selftest is None


def test_unpack_uv_takes_the_binary_out_of_its_wheel(tmp_path):
    import zipfile
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / f"uv-{UV}-py3-none-manylinux_2_17_x86_64.whl", "w") as zf:
        zf.writestr(f"uv-{UV}.data/scripts/uv", "#!/bin/sh\necho uv fake\n")
    target = tmp_path / "uv" / UV / "bin" / "uv"
    command = ray_commands.node_python("python3", "unpack_uv.py", str(wheels), UV, str(target))
    assert subprocess.run(["sh", "-c", command]).returncode == 0
    assert subprocess.run([str(target)], capture_output=True, text=True).stdout == "uv fake\n"
    missing = ray_commands.node_python("python3", "unpack_uv.py", str(wheels), "0.0.1",
                                       str(tmp_path / "other"))
    ran = subprocess.run(["sh", "-c", missing], capture_output=True, text=True)
    assert ran.returncode == 1 and f"no uv 0.0.1 wheel in {wheels}" in ran.stderr


FAKE_TOOL = """#!/bin/sh
echo "$(basename "$0") $*" >> "$(dirname "$0")/../calls"
[ -e "$(dirname "$0")/../$(basename "$0")-fails" ] && exit 1
exit 0
"""


def test_worker_requirements_uv_refuses_are_installed_by_pip_and_it_is_said(tmp_path):
    home = str(tmp_path)
    venv = ray_commands.state_path(home, "venvs", "ray-2.60.0-py3")
    os.makedirs(os.path.join(venv, "bin"))
    for tool in ("uv", "python"):
        path = os.path.join(venv, "bin", tool)
        with open(path, "w") as handle:
            handle.write(FAKE_TOOL)
        os.chmod(path, 0o755)

    def install(digest):
        command = ray_commands.install_requirements(home, venv, "/w/requirements.txt", digest,
                                                    offline=True)
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True)

    def calls():
        with open(os.path.join(venv, "calls")) as handle:
            return [line.split()[0] for line in handle.read().splitlines()]

    assert install("d1").stdout == "" and calls() == ["uv"]
    open(os.path.join(venv, "uv-fails"), "w").close()
    by_pip = install("d2")
    assert by_pip.returncode == 0 and calls() == ["uv", "uv", "python"]
    assert by_pip.stdout == ray_commands.REQUIREMENTS_BY_PIP + "\n"
    open(os.path.join(venv, "python-fails"), "w").close()
    assert install("d3").returncode != 0
    assert not os.path.exists(os.path.join(venv, ray_commands.REQUIREMENTS_RECORD))
