"""Command building: exact text, and hostile values that must never run as shell."""

import subprocess

import pytest

from ray_tasks import config, installing, ray_commands, shell, wheelhouse
from ray_tasks.node_settings import parse_words

HOSTILE = ["$(touch pwned)", "`touch pwned`", "a; touch pwned", "it's", 'say "hi"',
           "with space", "$HOME", "a\nb", "--flag"]


@pytest.mark.parametrize("value", HOSTILE)
def test_quoted_values_reach_the_program_unchanged(tmp_path, value):
    command = shell.join("printf", "%s", value)
    out = subprocess.run(["sh", "-c", command], cwd=tmp_path, capture_output=True, text=True)
    assert out.stdout == value
    assert not (tmp_path / "pwned").exists()


def test_home_relative_expands_home_only():
    out = subprocess.run(["sh", "-c", "printf %s " + shell.home_relative("~/dir $(x)")],
                         capture_output=True, text=True, env={"HOME": "/h"})
    assert out.stdout == "/h/dir $(x)"


def test_env_assignments_quote_values_and_check_names():
    assert shell.env_assignments({"A": "x y", "B": "$(z)"}) == "A='x y' B='$(z)'"
    with pytest.raises(ValueError):
        shell.env_assignments({"A;B": "1"})


def test_ray_start_for_head_and_worker():
    settings = config.from_mapping({"start_args": "--block"})
    resources = ["--num-cpus=4", "--object-store-memory=104857600"]
    head = ray_commands.ray_start(settings, "/r", "10.0.0.1", resources, timeout=120)
    assert head.startswith("cd /r && env RAY_TASKS_HOME=/r PYTHONPATH=/r/.ray-tasks/worker_code ")
    assert "RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=/r/.ray-tasks/auth_token" in head
    assert head.endswith(
        "timeout 120 /r/.ray-tasks/venv/bin/ray start --head --dashboard-host=127.0.0.1 "
        "--port=6379 --node-manager-port=6380 --object-manager-port=6381 "
        "--ray-client-server-port=6382 --dashboard-agent-grpc-port=6383 "
        "--dashboard-agent-listen-port=6384 --metrics-export-port=6385 "
        "--runtime-env-agent-port=6386 --dashboard-port=8265 --min-worker-port=6479 "
        "--max-worker-port=8178 --node-ip-address=10.0.0.1 --num-cpus=4 "
        "--object-store-memory=104857600 --temp-dir=/r/.ray-tasks/tmp --disable-usage-stats "
        "--block")
    worker = ray_commands.ray_start(settings, "/r", "10.0.0.2", [], head_address="10.0.0.1:6379")
    assert "--address=10.0.0.1:6379 --node-manager-port=6380 " in worker
    assert "--max-worker-port=8178 --node-ip-address=10.0.0.2 --temp-dir" in worker
    assert "--port=" not in worker and "--dashboard-port=8265" in worker
    assert "--head" not in worker and "timeout" not in worker


def test_resource_args_take_the_node_values_over_the_configured_ones():
    settings = config.from_mapping({"num_workers": "3", "object_store_memory": "100M"})
    node = parse_words(["gpus=2", "memory=1G", "resource.ssd=2", "resource.fast=0.5"])
    assert ray_commands.resource_args(node.over(settings)) == [
        "--num-cpus=3", "--num-gpus=2", f"--memory={2**30}",
        f"--object-store-memory={100 * 2**20}", '--resources={"fast": 0.5, "ssd": 2}']
    own = parse_words(["cpus=0", "object_store_memory=200M"]).over(settings)
    assert ray_commands.resource_args(own) == ["--num-cpus=0",
                                               f"--object-store-memory={200 * 2**20}"]
    assert ray_commands.resource_args(parse_words([]).over(config.from_mapping({}))) == []


def test_hostile_values_reach_ray_start_as_plain_arguments(tmp_path):
    home = tmp_path / "it's a $(dir)"
    fake_ray = home / ".ray-tasks" / "venv" / "bin" / "ray"
    fake_ray.parent.mkdir(parents=True)
    fake_ray.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake_ray.chmod(0o755)
    settings = config.from_mapping({"start_args": "--x='$(touch pwned)' ; `touch pwned2`"})
    command = ray_commands.ray_start(settings, str(home), "1.2.3.4", ["--num-cpus=1"])
    out = subprocess.run(["sh", "-c", command], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-3:] == ["--x=$(touch pwned)", ";", "`touch", "pwned2`"][-3:]
    assert "--x=$(touch pwned)" in out.stdout.splitlines()
    assert not list(tmp_path.glob("pwned*")) and not list(home.glob("pwned*"))


def test_setup_env_exports_cluster_and_never_the_token():
    text = ray_commands.setup_env("/r", "10.0.0.1:6379", local=False)
    assert "export RAY_ADDRESS=10.0.0.1:6379" in text
    assert "export RAY_AUTH_TOKEN_PATH=/r/.ray-tasks/auth_token" in text
    assert "RAY_TASKS_HOME" not in text and "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in text
    out = subprocess.run(["sh", "-c", text + 'printf "%s|%s" "$PYTHONPATH" "$PATH"'],
                         capture_output=True, text=True, env={"PATH": "/bin", "PYTHONPATH": "/p"})
    assert out.stdout == "/r/.ray-tasks/worker_code:/p|/r/.ray-tasks/venv/bin:/bin"


def test_create_venv_offline_uses_only_the_wheelhouse():
    command = ray_commands.create_venv("python3", "/r", "/r/venvs/v", "ray==2.60.0", True)
    assert "--no-index --find-links /r/.ray-tasks/wheels ray==2.60.0" in command
    assert command.startswith("[ -f /r/venvs/v/.complete ] || { mkdir -p /r/venvs && "
                              "flock /r/venvs/v.lock sh -c '[ -f /r/venvs/v/.complete ] || ")
    assert command.endswith("touch /r/venvs/v/.complete; }'; }")


def test_pip_platforms_for_glibc():
    tags = wheelhouse.pip_platforms("x86_64", "2.36")
    assert tags[:2] == ["linux_x86_64", "manylinux_2_36_x86_64"]
    assert "manylinux_2_17_x86_64" in tags and "manylinux2014_x86_64" in tags
    assert "manylinux1_x86_64" in tags and "manylinux_2_4_x86_64" not in tags


def test_root_steps_use_sudo_reading_stdin_or_never_asking():
    step = ray_commands.install_os_package(ray_commands.venv_package("3.11.2"))
    assert "apt-get install -y -q python3.11-venv" in step
    assert ray_commands.as_root(step, user_is_root=True, password_on_stdin=False) \
        == shell.join("sh", "-c", step)
    assert ray_commands.as_root("id", user_is_root=False, password_on_stdin=True) \
        == "sudo -S -p '' -- sh -c id"
    assert ray_commands.as_root("id", user_is_root=False, password_on_stdin=False) \
        == "sudo -n -- sh -c id"


@pytest.mark.parametrize("printed, says", [
    ("sudo: a password is required", "rerun with --prompt-for-sudo-password"),
    ("Sorry, try again.\nsudo: 1 incorrect password attempt", "sudo refused the password"),
    ("op is not in the sudoers file.", "this user may not use sudo"),
    ("sh: 1: sudo: not found", "sudo is not installed"),
    ("no apt-get on this node", "no apt-get here"),
])
def test_root_failures_say_the_fix(printed, says):
    assert says in installing.root_failure(printed, "python3.11-venv")
    assert installing.root_failure("E: disk full", "python3.11-venv") is None
