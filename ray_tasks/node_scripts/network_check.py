"""Node side of the network check: listen on this node's Ray ports, connect to the others'.

Runs with the node's plain Python (standard library only), on every node at once, in one
round trip each. It reads its plan as JSON from argv[1]:

    {"home": this cluster's installation directory,
     "ip": the address Ray will announce for this node,
     "listen": {name: port}, the ports this node's Ray uses (first worker port included),
     "workers": [first, last], the worker port range,
     "running": whether this cluster's Ray runs here,
     "connect": [[node, what, ip, port], ...], the ports of the others to reach,
     "timeout": seconds per connection, "window": seconds to retry a refused one}

A port already in use is left to its owner: this cluster's Ray answers there when it runs;
when it does not, the port is reported as taken (a worker port, only noted). Every other port
gets a listener of this script, so a connection tells whether the network lets it through
with Ray stopped or running. Prints {"problems": [...], "notes": [...] (worth saying, not
failing for), "failed": [[node, what, ip, port, reason], ...], "others": {installation
directory: port}} (the other ray-tasks clusters running here).
"""

import json
import os
import socket
import sys
import threading
import time


def listen(ip, port):
    """A socket listening on ``ip:port``, or the OSError that prevents it."""
    listener = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((ip, port))
        listener.listen(64)
    except OSError as error:
        listener.close()
        return error
    return listener


MARKER = b"RAY_TASKS_HOME="


def cluster_home(pid):
    """The installation directory of the ray-tasks cluster process ``pid`` belongs to (in
    this PID namespace), or None."""
    try:
        if os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid"):
            return None
        with open(f"/proc/{pid}/environ", "rb") as handle:
            found = [item for item in handle.read().split(b"\0") if item.startswith(MARKER)]
    except OSError:
        return None
    return found[0][len(MARKER):].decode(errors="replace") if found else None


def recorded_port(home):
    """The port recorded in the cluster.json of the cluster installed in ``home``, or None."""
    try:
        with open(os.path.join(home, ".ray-tasks", "cluster.json")) as handle:
            return json.load(handle).get("port")
    except (OSError, ValueError, AttributeError):
        return None


def other_clusters(home):
    """{installation directory: port} of the other ray-tasks clusters running here (those
    whose processes this user may read)."""
    homes = {cluster_home(entry) for entry in os.listdir("/proc") if entry.isdigit()}
    ports = {other: recorded_port(other) for other in homes - {None, home}}
    return {other: port for other, port in ports.items() if isinstance(port, int)}


def own_address(ip):
    """A problem when ``ip`` is not an address of this node, else None."""
    answer = listen(ip, 0)
    if isinstance(answer, OSError):
        return (f"the address Ray would announce, {ip}, is not one of this node's "
                f"({answer.strerror}): set the node's address in the nodes file")
    answer.close()
    return None


def listening_ports():
    """The TCP ports something listens on in this network namespace (IPv4 and IPv6)."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                rows = [line.split() for line in handle.readlines()[1:]]
        except OSError:
            continue
        ports.update(int(row[1].rsplit(":", 1)[1], 16) for row in rows if row[3] == "0A")
    return ports


def accept_all(listeners, until):
    """Accept and drop connections on ``listeners`` until the monotonic time ``until``."""
    for listener in listeners:
        listener.settimeout(0.1)
    while time.monotonic() < until:
        for listener in listeners:
            try:
                listener.accept()[0].close()
            except OSError:
                pass


def connect(ip, port, timeout, window):
    """None when ``ip:port`` accepts a connection, else why not (refused, timed out...); a
    refused connection is tried again until ``window`` seconds have passed (the peer's
    listener may not be up yet)."""
    deadline = time.monotonic() + window
    while True:
        try:
            socket.create_connection((ip, port), timeout=timeout).close()
            return None
        except socket.timeout:
            return "timed out"
        except ConnectionRefusedError:
            if time.monotonic() >= deadline:
                return "refused"
            time.sleep(0.2)
        except OSError as error:
            return error.strerror or str(error)


def probe(target, plan, failed):
    """Connect to one ``target`` (node, what, ip, port); add it to ``failed`` with the
    reason when it does not answer."""
    node, what, ip, port = target
    reason = connect(ip, port, plan["timeout"], plan["window"])
    if reason:
        failed.append([node, what, ip, port, reason])


def open_listeners(plan, problems, notes):
    """Listen on each of the plan's free ports; a taken one is a problem unless this
    cluster's Ray runs here. Worker ports something else listens on are a note: Ray gives
    its workers the others."""
    listeners = []
    for name, port in plan["listen"].items():
        answer = listen(plan["ip"], port)
        if not isinstance(answer, OSError):
            listeners.append(answer)
        elif not plan["running"]:
            problems.append(f"port {port} ({name}) is in use on this node ({answer.strerror}):"
                            " stop what listens there or set ray.port")
    if not plan["running"]:
        first, last = plan["workers"]
        taken = sorted(port for port in listening_ports() if first <= port <= last
                       and port not in plan["listen"].values())
        if taken:
            notes.append(f"worker port(s) {', '.join(map(str, taken[:5]))} of {first}-{last} "
                         "in use by another program (a driver left running?); Ray uses the "
                         "others")
    return listeners


def main(argv):
    plan = json.loads(argv[1])
    problem = own_address(plan["ip"])
    if problem:
        print(json.dumps({"problems": [problem], "notes": [], "failed": [], "others": {}}))
        return
    problems, notes = [], []
    listeners = open_listeners(plan, problems, notes)
    until = time.monotonic() + plan["window"] + plan["timeout"] + 1
    accepting = threading.Thread(target=accept_all, args=(listeners, until), daemon=True)
    accepting.start()
    failed = []
    probes = [threading.Thread(target=probe, args=(target, plan, failed))
              for target in plan["connect"]]
    for each in probes:
        each.start()
    for each in probes:
        each.join()
    accepting.join()
    print(json.dumps({"problems": problems, "notes": notes, "failed": sorted(failed),
                      "others": other_clusters(plan["home"])}))


if __name__ == "__main__":
    main(sys.argv)
