"""Reading the test hosts' real state over SSH: Ray versions, Ray processes, a driver's view."""

import json
import posixpath
import shlex
import textwrap

HOME = "/root/ray"
STATE_DIR = ".ray-tasks"

DRIVER = textwrap.dedent("""
    import importlib, json, sys, ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    ray.init(logging_level="ERROR", log_to_driver=False)

    @ray.remote(num_cpus=0)
    def where(module, attribute):
        import socket
        return socket.gethostname(), getattr(importlib.import_module(module), attribute)

    seen = {}
    for node in ray.nodes():
        if node["Alive"]:
            strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            task = where.options(scheduling_strategy=strategy).remote(*sys.argv[1:3])
            name, value = ray.get(task, timeout=120)
            seen[name] = {"value": value, "cpus": node["Resources"].get("CPU")}
    print(json.dumps(seen))
""")


def node_path(*names, home=HOME):
    """Where ray-tasks keeps ``names`` on a node (in its own directory under ``home``)."""
    return posixpath.join(home, STATE_DIR, *names)


def setup_env(home=HOME):
    """The setup-env.sh users source on a node."""
    return posixpath.join(home, "setup-env.sh")


def run_driver(cluster, module="probe_mod", attribute="VALUE", home=HOME):
    """The driver on the head, as an operator would run it: setup-env.sh, then python.

    Returns {hostname: {"value": module.attribute as imported there, "cpus": N}}."""
    head = cluster.hosts[0]
    result = cluster.ssh(head, f". {setup_env(home)} && python -c {shlex.quote(DRIVER)} "
                               f"{module} {attribute}")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def venv_versions(cluster, home=HOME):
    versions = {}
    for host in cluster.hosts:
        result = cluster.ssh(host, f"{node_path('venv', 'bin', 'python', home=home)} -c "
                                   "'import ray; print(ray.__version__)'")
        versions[host.name] = result.stdout.strip() or result.stderr.strip()
    return versions


def ray_processes(cluster, host):
    result = cluster.ssh(host, "ps -eo pid=,comm=,args=")
    words = ("raylet", "gcs_server", "ray::", f"/{STATE_DIR}/venv")
    return [line for line in result.stdout.splitlines() if any(word in line for word in words)]
