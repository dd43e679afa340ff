"""Configuration layering through Invoke itself: defaults < invoke.yaml < INVOKE_RAY_* < flags."""

import os
import subprocess
import sys
import textwrap

import pytest

from ray_tasks import config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SHOW = textwrap.dedent("""
    from invoke import task, Collection
    from ray_tasks.collection import namespace
    from ray_tasks import config

    @task
    def show(c, nodes=None, version=None):
        s = config.settings(c, nodes=nodes, version=version)
        print(s.nodes, s.version, s.installation_directory, s.username or "-", s.wheelhouse,
              s.num_workers, s.object_store_memory)

    ns = Collection(show)
    ns.configure(namespace.configuration())
""")


def show(tmp_path, *flags, env=None, yaml=None):
    (tmp_path / "tasks.py").write_text(SHOW)
    if yaml:
        (tmp_path / "invoke.yaml").write_text(yaml)
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("INVOKE_")}
    environment["PYTHONPATH"] = REPO
    environment.update(env or {})
    result = subprocess.run([sys.executable, "-m", "invoke", "show", *flags], cwd=tmp_path,
                            env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_defaults(tmp_path):
    assert show(tmp_path) == ["nodes.txt", "2.60.0", "~/ray", "-", "False", "None", "None"]


def test_yaml_then_environment_then_flags(tmp_path):
    yaml = "ray:\n  nodes: /y/nodes.txt\n  version: 2.59.0\n  username: yamluser\n" \
           "  object_store_memory: 200M\n"
    assert show(tmp_path, yaml=yaml)[:4] == ["/y/nodes.txt", "2.59.0", "~/ray", "yamluser"]
    env = {"INVOKE_RAY_NODES": "/x/nodes.txt", "INVOKE_RAY_USERNAME": "root",
           "INVOKE_RAY_INSTALLATION_DIRECTORY": "/opt/r", "INVOKE_RAY_WHEELHOUSE": "1",
           "INVOKE_RAY_NUM_WORKERS": "3"}
    assert show(tmp_path, env=env, yaml=yaml) == [
        "/x/nodes.txt", "2.59.0", "/opt/r", "root", "True", "3", str(200 * 2**20)]
    assert show(tmp_path, "--nodes=/f/nodes.txt", "--version=2.58.0", env=env, yaml=yaml)[:2] \
        == ["/f/nodes.txt", "2.58.0"]


@pytest.mark.parametrize("value, expected", [
    ("", None), ("78643200", 75 * 2**20), ("200M", 200 * 2**20), ("1.5G", int(1.5 * 2**30)),
    ("512MiB", 512 * 2**20), (100000000, 100000000), ("0.5g", 2**29),
])
def test_sizes(value, expected):
    assert config.parse_size(value) == expected


@pytest.mark.parametrize("value", ["0", "0.5", "2X", "1000", "74M", True, "-1G", "1e9",
                                   "9" * 400 + "T"])
def test_sizes_refused(value):
    with pytest.raises(config.ConfigError, match="object_store_memory: "):
        config.parse_size(value)


@pytest.mark.parametrize("key, value, message", [
    ("object_store_memory", "lots", "is not a size"),
    ("num_workers", "ten", "is not a whole number"),
    ("parallel", 0, "must be at least 1"),
    ("num_workers", "2.9", "is not a whole number"),
    ("num_workers", 2.9, "is not a whole number"),
    ("num_workers", True, "is not a whole number"),
    ("num_workers", "0", "must be at least 1"),
    ("command_timeout", "-5", "is not a whole number"),
    ("join_timeout", None, "is not a whole number"),
    ("port", 63537, "must be 1-63536"),
    ("connect_timeout", 10**9, "must be 1-604800"),
    ("port", "0", "must be 1-63536"),
    ("version", "2.60.0;x", "is not a Ray release number"),
    ("version", 2.6, "was read as a number"),
    ("version", "latest", "is not a Ray release number"),
    ("start_args", "--x 'unbalanced", "balance its quotes"),
    ("installation_directory", "", "is empty"),
    ("installation_directory", "ray", "is relative"),
    ("installation_directory", "~user/ray", "is relative"),
    ("wheelhouse", "perhaps", "is not true or false"),
    ("python", None, "python is empty"),
    ("host_key_policy", "yolo", "is not one of"),
    ("version", "2.60.0; rm -rf /", "is not a Ray release number"),
    ("extras", "default] os", "is not a list of pip extras"),
])
def test_bad_values_are_config_errors(key, value, message):
    with pytest.raises(config.ConfigError, match=message):
        config.from_mapping({key: value})


def test_requirement():
    assert config.from_mapping({}).requirement == "ray[default]==2.60.0"
    assert config.from_mapping({"extras": "", "version": "2.59.0"}).requirement == "ray==2.59.0"


@pytest.mark.parametrize("value", ["", "  ", None])
def test_num_workers_unset_lets_ray_count_the_cpus(value):
    assert config.from_mapping({"num_workers": value}).num_workers is None
