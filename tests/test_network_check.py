"""The node side of the network check (node_scripts/network_check.py), run for real on this
machine's loopback: two nodes' checks at once, a port nobody answers, a taken port, an
address that is not the node's."""

import concurrent.futures
import json
import socket
import subprocess
import sys

from ray_tasks.node_scripts import source


def free_ports(count):
    """``count`` ports free on 127.0.0.1 right now."""
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(("127.0.0.1", 0))
    ports = [each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return ports


def run_check(plan):
    printed = subprocess.run([sys.executable, "-c", source("network_check.py"),
                              json.dumps(plan)], capture_output=True, text=True, timeout=60,
                             check=True).stdout
    return json.loads(printed.splitlines()[-1])


def plan(listen, connect, running=False, ip="127.0.0.1"):
    return {"home": "/nonexistent/rt", "ip": ip, "listen": listen, "workers": [0, -1],
            "running": running, "connect": connect, "timeout": 1, "window": 1}


def test_two_nodes_reach_each_other_and_a_closed_port_is_refused():
    a_port, b_port, closed = free_ports(3)
    a = plan({"node manager": a_port}, [["b", "node manager", "127.0.0.1", b_port],
                                        ["b", "object manager", "127.0.0.1", closed]])
    b = plan({"node manager": b_port}, [["a", "node manager", "127.0.0.1", a_port]])
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answer_a, answer_b = pool.map(run_check, [a, b])
    assert answer_a["failed"] == [["b", "object manager", "127.0.0.1", closed, "refused"]]
    assert answer_b == {"problems": [], "notes": [], "failed": [], "others": {}}


def test_a_taken_port_is_a_problem_only_while_this_cluster_is_stopped():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stopped = run_check(plan({"object manager": port}, []))
        running = run_check(plan({"object manager": port}, [], running=True))
    assert stopped["problems"] == [f"port {port} (object manager) is in use on this node "
                                   "(Address already in use): stop what listens there or set "
                                   "ray.port"]
    assert running["problems"] == []


def worker_plan(first, last):
    answer = plan({}, [])
    answer["workers"] = [first, last]
    return answer


def test_a_worker_port_something_listens_on_is_noted_not_a_problem():
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        answer = run_check(worker_plan(port - 1, port + 1))
    assert answer["problems"] == []
    assert answer["notes"] == [f"worker port(s) {port} of {port - 1}-{port + 1} in use by "
                               "another program (a driver left running?); Ray uses the others"]


def test_a_connection_left_on_a_worker_port_is_not_noted():
    with socket.socket() as listening, socket.socket() as connected:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        connected.connect(("127.0.0.1", port))
        accepted, _ = listening.accept()
        listening.close()
        with accepted:
            answer = run_check(worker_plan(port, port))
    assert answer["problems"] == answer["notes"] == []


def test_an_address_that_is_not_the_node_s_is_named():
    answer = run_check(plan({}, [], ip="192.0.2.77"))
    assert answer["problems"][0].startswith("the address Ray would announce, 192.0.2.77, is "
                                            "not one of this node's")
