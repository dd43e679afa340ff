"""ray-tasks as its users install it: a fresh venv, `pip install <checkout>` (a copy of this
checkout's files, so no build output lands in the repository), then the `ray-tasks` program
run from a directory outside the repository, reading nodes.txt and ray-tasks.yaml there."""

import os
import shutil
import subprocess
import sys

import pytest

import ray_tasks
from as_user import REPO


def checkout_copy(destination):
    """The repository's files (tracked, and new ones not ignored) copied to ``destination``."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (name.decode() for name in names)):
        source = os.path.join(REPO, name)
        if os.path.isfile(source):
            os.makedirs(os.path.join(destination, os.path.dirname(name)), exist_ok=True)
            shutil.copy2(source, os.path.join(destination, name))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the venv's bin directory, an empty working directory outside the repository)."""
    base = tmp_path_factory.mktemp("installed")
    checkout, venv = base / "checkout", base / "venv"
    checkout_copy(checkout)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(checkout)],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    work = base / "work"
    work.mkdir()
    return venv / "bin", work


def run(installed, *command, **extra_env):
    """``command`` run in the working directory as a user of the installed program would."""
    bin_dir, work = installed
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("INVOKE_", "RAY_TASKS_", "PYTHON"))}
    env.update(PATH=f"{bin_dir}:{env.get('PATH', '')}", **extra_env)
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=120)
    result.output = result.stdout + result.stderr
    return result


def test_version_is_the_package_version(installed):
    result = run(installed, "ray-tasks", "--version")
    assert result.returncode == 0, result.output
    assert result.stdout.strip() == f"ray-tasks {ray_tasks.__version__}"


def test_list_shows_every_task(installed):
    result = run(installed, "ray-tasks", "--list")
    assert result.returncode == 0, result.output
    listed = {line.split()[0] for line in result.stdout.splitlines()[1:] if line.strip()
              and not line.startswith(" " * 4)}
    assert listed == set(ray_tasks.namespace.tasks), result.stdout


def test_nodes_txt_is_read_from_the_current_directory(installed):
    missing = run(installed, "ray-tasks", "status")
    assert missing.returncode == 2 and missing.output.startswith("error: nodes.txt: no such "
                                                                 "file"), missing.output
    (installed[1] / "nodes.txt").write_text("10.0.0.1 colour=blue\n")
    try:
        bad = run(installed, "ray-tasks", "status")
    finally:
        (installed[1] / "nodes.txt").unlink()
    assert bad.returncode == 2 and "nodes.txt:1:" in bad.output, bad.output
    assert "Traceback" not in bad.output


def test_ray_tasks_yaml_then_ray_tasks_variables(installed):
    (installed[1] / "ray-tasks.yaml").write_text("ray:\n  nodes: from-yaml.txt\n")
    try:
        from_yaml = run(installed, "ray-tasks", "stop")
        from_env = run(installed, "ray-tasks", "stop", RAY_TASKS_RAY_NODES="from-env.txt",
                       INVOKE_RAY_NODES="not-ours.txt")
    finally:
        (installed[1] / "ray-tasks.yaml").unlink()
    assert from_yaml.output.startswith("error: from-yaml.txt: no such file"), from_yaml.output
    assert from_env.output.startswith("error: from-env.txt: no such file"), from_env.output


def test_the_package_holds_the_node_scripts(installed):
    script = ("import ray_tasks, ray_tasks.node_scripts as s; print(ray_tasks.__file__); "
              "print(all(s.source(n) for n in ('node_state.py', 'runtest.py', "
              "'cluster_check.py')))")
    result = run(installed, "python", "-c", script)
    assert result.returncode == 0, result.output
    where, found = result.stdout.split()
    assert where.startswith(str(installed[0].parent)) and found == "True", result.output


def test_completion_script_names_the_program(installed):
    result = run(installed, "ray-tasks", "--print-completion-script", "bash")
    assert result.returncode == 0, result.output
    assert "complete -F _complete_ray-tasks" in result.stdout
    assert "--complete" in result.stdout
