"""Cluster checks on the head, run after sourcing setup-env.sh.

    python cluster_check.py wait IP[,IP...] TIMEOUT [CANCEL_FILE]   until every IP is alive
    python cluster_check.py test IP[,IP...]                         the whole-cluster test
    python cluster_check.py drain IP TIMEOUT                        drain the node, wait it out

`wait` asks the GCS (Ray's own client, no driver): it starts in well under a second and may
be started before the head, waiting for its port; it gives up early if CANCEL_FILE appears.
`drain` asks the GCS to drain the node (Ray's DrainNode, as its autoscaler does before it
removes a node): no new task is scheduled there, and its raylet exits by itself once its
running tasks are done. `test` runs as a Ray driver. Each prints one JSON object on the
last line of output: {"ok": bool, "nodes": {ip: {...}}}.
"""

import hashlib
import json
import os
import pkgutil
import socket
import sys
import time

import ray
from ray._raylet import GcsClient
from ray.core.generated.autoscaler_pb2 import DrainNodeReason
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


def alive_nodes():
    """{ip: node record} of the alive nodes of the cluster (as a driver)."""
    return {node["NodeManagerAddress"]: node for node in ray.nodes() if node["Alive"]}


def cancelled(cancel_file):
    """Whether the controller asked to stop waiting (the file is removed then)."""
    if cancel_file and os.path.exists(cancel_file):
        os.remove(cancel_file)
        return True
    return False


def gcs_reachable(address, cancel_file, deadline):
    """Wait until the GCS port at ``address`` accepts connections; False if it never did."""
    host, port = address.rsplit(":", 1)
    while time.monotonic() < deadline and not cancelled(cancel_file):
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def gcs_alive_nodes(client):
    """{ip: total resources} of the alive nodes, as the GCS knows them."""
    return {node.node_manager_address: dict(node.resources_total)
            for node in client.get_all_node_info(timeout=10).values()
            if node.state == node.ALIVE}


def wait(expected, timeout, cancel_file=None):
    """Wait until every expected IP is an alive node (or the timeout, or cancel_file);
    report every node that is expected or alive."""
    deadline = time.monotonic() + timeout
    address = os.environ["RAY_ADDRESS"]
    alive = {}
    if gcs_reachable(address, cancel_file, deadline):
        client = GcsClient(address=address)
        while True:
            alive = gcs_alive_nodes(client)
            if (all(ip in alive for ip in expected) or time.monotonic() > deadline
                    or cancelled(cancel_file)):
                break
            time.sleep(0.2)
    nodes = {ip: {"alive": True, "resources": resources} for ip, resources in alive.items()}
    for ip in expected:
        nodes.setdefault(ip, {"alive": False, "resources": {}})
    return {"ok": all(nodes[ip]["alive"] for ip in expected), "nodes": nodes}


def node_id(client, ip):
    """The hex ID of the alive node at ``ip``, or None."""
    for node in client.get_all_node_info(timeout=10).values():
        if node.state == node.ALIVE and node.node_manager_address == ip:
            return node.node_id.hex()
    return None


def drain(ip, timeout):
    """Drain the node at ``ip`` (a preemption drain: Ray accepts it even while tasks run
    there) and wait until its raylet has left the cluster, at most ``timeout`` seconds."""
    client = GcsClient(address=os.environ["RAY_ADDRESS"])
    node = node_id(client, ip)
    if node is None:
        return {"ok": True, "nodes": {ip: {"drained": "not in the cluster"}}}
    deadline = time.time() + timeout
    accepted, refusal = client.drain_node(
        node, DrainNodeReason.Value("DRAIN_NODE_REASON_PREEMPTION"),
        "ray-tasks restart-workers --rolling", int(deadline * 1000))
    if not accepted:
        return {"ok": False, "nodes": {ip: {"drained": f"refused: {refusal}"}}}
    while node_id(client, ip) == node and time.time() < deadline:
        time.sleep(0.2)
    left = node_id(client, ip) != node
    return {"ok": left, "nodes": {ip: {"drained": "left" if left else "busy"}}}


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


def gather(references, timeout):
    """(value, error) for each reference, waiting at most ``timeout`` seconds in all."""
    ready, _ = ray.wait(references, num_returns=len(references), timeout=timeout)
    results = []
    for reference in references:
        if reference not in ready:
            results.append((None, f"no answer within {timeout:g}s"))
            continue
        try:
            results.append((ray.get(reference), None))
        except Exception as error:  # a task's failure is the finding to report
            results.append((None, f"{type(error).__name__}: {str(error).splitlines()[0]}"))
    return results


def test(expected, timeout=60):
    alive = alive_nodes()
    nodes = {ip: {"alive": ip in alive, "errors": []} for ip in expected}
    reachable = [ip for ip in expected if ip in alive]
    for ip in expected:
        if ip not in alive:
            nodes[ip]["errors"].append("not an alive node of the cluster")
    described = gather(
        [pinned(describe_node, alive[ip]["NodeID"]).remote() for ip in reachable], timeout)
    for ip, (info, error) in zip(reachable, described):
        if error:
            nodes[ip]["errors"].append(f"pinned task failed: {error}")
            continue
        nodes[ip].update(info)
        if info["ip"] != ip:
            nodes[ip]["errors"].append(f"pinned task ran on {info['ip']}")
        for name, import_error in info["import_errors"].items():
            nodes[ip]["errors"].append(f"worker_code module {name}: {import_error}")
    working = [ip for ip in reachable if not nodes[ip]["errors"]]
    pairs = list(zip(working, working[1:] + working[:1]))
    references = [pinned(make_object, alive[maker]["NodeID"]).remote(2 * 1024 * 1024)
                  for maker, _ in pairs]
    made = gather(references, timeout) if pairs else []
    for (maker, reader), reference, (data, error) in zip(pairs, references, made):
        if error:
            nodes[maker]["errors"].append(f"could not make an object: {error}")
            continue
        nodes[reader]["object_from"] = maker
        (result, error), = gather([pinned(digest, alive[reader]["NodeID"]).remote(reference)],
                                  timeout)
        if error or result != (hashlib.sha256(data).hexdigest(), reader):
            nodes[reader]["errors"].append(f"could not read an object made on {maker}: "
                                           f"{error or 'wrong content'}")
    return {"ok": not any(node["errors"] for node in nodes.values()), "nodes": nodes}


def main(argv):
    action, expected = argv[1], argv[2].split(",")
    if action == "wait":
        result = wait(expected, float(argv[3]), argv[4] if len(argv) > 4 else None)
    elif action == "drain":
        result = drain(expected[0], float(argv[3]))
    else:
        ray.init(logging_level="ERROR", log_to_driver=False)
        try:
            result = test(expected)
        finally:
            ray.shutdown()
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
