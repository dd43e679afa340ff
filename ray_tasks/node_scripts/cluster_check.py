"""Cluster checks, run as a Ray driver on the head after sourcing setup-env.sh.

    python cluster_check.py wait IP[,IP...] TIMEOUT   until every IP is an alive node
    python cluster_check.py test IP[,IP...]          the whole-cluster test

Both print one JSON object on the last line of output: {"ok": bool, "nodes": {ip: {...}}}.
"""

import hashlib
import json
import os
import pkgutil
import socket
import sys
import time

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


def alive_nodes():
    """{ip: node record} of the alive nodes of the cluster."""
    return {node["NodeManagerAddress"]: node for node in ray.nodes() if node["Alive"]}


def wait(expected, timeout):
    deadline = time.monotonic() + timeout
    while True:
        alive = alive_nodes()
        if all(ip in alive for ip in expected) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    nodes = {}
    for ip in expected:
        record = alive.get(ip)
        nodes[ip] = {
            "alive": record is not None,
            "resources": record["Resources"] if record else {},
        }
    return {"ok": all(node["alive"] for node in nodes.values()), "nodes": nodes}


def worker_code_modules():
    """The top-level modules of the worker_code directory on this node's PYTHONPATH."""
    code_dirs = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                 if path.endswith("worker_code")]
    return sorted(
        module.name for path in code_dirs for module in pkgutil.iter_modules([path])
    )


@ray.remote(num_cpus=0)
def describe_node():
    """Where this task ran, and which worker_code modules import here."""
    errors = {}
    modules = worker_code_modules()
    for name in modules:
        try:
            __import__(name)
        except Exception as error:  # any failure to import is a finding to report
            errors[name] = f"{type(error).__name__}: {error}"
    return {
        "hostname": socket.gethostname(),
        "ip": ray.util.get_node_ip_address(),
        "modules": modules,
        "import_errors": errors,
    }


@ray.remote(num_cpus=0)
def make_object(size):
    return os.urandom(size)


@ray.remote(num_cpus=0)
def digest(data):
    return hashlib.sha256(data).hexdigest(), ray.util.get_node_ip_address()


def pinned(remote_function, node_id):
    return remote_function.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
    )


def test(expected):
    alive = alive_nodes()
    nodes = {ip: {"alive": ip in alive, "errors": []} for ip in expected}
    reachable = [ip for ip in expected if ip in alive]
    for ip in expected:
        if ip not in alive:
            nodes[ip]["errors"].append("not an alive node of the cluster")
    described = ray.get(
        [pinned(describe_node, alive[ip]["NodeID"]).remote() for ip in reachable], timeout=120
    )
    for ip, info in zip(reachable, described):
        nodes[ip].update(info)
        if info["ip"] != ip:
            nodes[ip]["errors"].append(f"pinned task ran on {info['ip']}")
        for name, error in info["import_errors"].items():
            nodes[ip]["errors"].append(f"worker_code module {name}: {error}")
    for maker_ip, reader_ip in zip(reachable, reachable[1:] + reachable[:1]):
        reference = pinned(make_object, alive[maker_ip]["NodeID"]).remote(2 * 1024 * 1024)
        expected_digest = hashlib.sha256(ray.get(reference, timeout=120)).hexdigest()
        seen_digest, ran_on = ray.get(
            pinned(digest, alive[reader_ip]["NodeID"]).remote(reference), timeout=120
        )
        nodes[reader_ip]["object_from"] = maker_ip
        if seen_digest != expected_digest or ran_on != reader_ip:
            nodes[reader_ip]["errors"].append(f"object made on {maker_ip} read back wrong")
    return {"ok": not any(node["errors"] for node in nodes.values()), "nodes": nodes}


def main(argv):
    action, expected = argv[1], argv[2].split(",")
    ray.init(logging_level="ERROR", log_to_driver=False)
    try:
        if action == "wait":
            result = wait(expected, float(argv[3]))
        else:
            result = test(expected)
    finally:
        ray.shutdown()
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
