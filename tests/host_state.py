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

RESOURCES = textwrap.dedent("""
    import json, ray
    ray.init(logging_level="ERROR", log_to_driver=False)
    print(json.dumps({node["NodeManagerAddress"]: node["Resources"]
                      for node in ray.nodes() if node["Alive"]}))
""")


def node_path(*names, home=HOME):
    """Where ray-tasks keeps ``names`` on a node (in its own directory under ``home``)."""
    return posixpath.join(home, STATE_DIR, *names)


def setup_env(home=HOME):
    """The setup-env.sh users source on a node."""
    return posixpath.join(home, "setup-env.sh")


def drive(cluster, code, *args, home=HOME):
    """Run the driver ``code`` on the head, as an operator would: setup-env.sh, then python;
    returns the JSON it printed last."""
    head = cluster.hosts[0]
    result = cluster.ssh(head, f". {setup_env(home)} && python -c {shlex.quote(code)} "
                               + " ".join(map(shlex.quote, args)))
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_driver(cluster, module="probe_mod", attribute="VALUE", home=HOME):
    """A driver on the head that imports worker code on every node.

    Returns {hostname: {"value": module.attribute as imported there, "cpus": N}}."""
    return drive(cluster, DRIVER, module, attribute, home=home)


def node_resources(cluster, home=HOME):
    """{ip: resources} of every alive node, as a driver's ray.nodes() reports them."""
    return drive(cluster, RESOURCES, home=home)


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
