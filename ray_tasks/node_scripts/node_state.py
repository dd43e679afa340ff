"""Node side: report this node's installation and Ray processes, stop them, replace workers.

Runs with the node's plain Python (standard library only), before and after Ray is installed.
The Ray processes of one ray-tasks cluster are those whose environment holds
RAY_TASKS_HOME=<installation directory>: `ray start` is given it, and every process Ray
spawns inherits it. Nothing else on the machine is touched (unlike `ray stop`).

Every task runs it at least once per node (the probe), so it imports little: platform, glob
and hashlib together cost a node more than the probe's own work (hashlib is imported where a
digest is taken).

    python3 node_state.py probe DIR PORT [HEAD]
    python3 node_state.py route DIR HEAD PORT
    python3 node_state.py stop DIR [GRACE_SECONDS]
    python3 node_state.py kill-workers DIR [--force]
    python3 node_state.py replace-idle-workers DIR SECONDS [--force]
"""

import json
import os
import signal
import socket
import sys
import time

MARKER = "RAY_TASKS_HOME"
# What ray-tasks owns under the installation directory (ray_commands.py imports these names).
STATE_DIR = ".ray-tasks"
OWNER_FILE = "owner"
SETUP_ENV = "setup-env.sh"
SETUP_ENV_RECORD = "setup-env.sha256"
REQUIREMENTS_RECORD = ".requirements"
SELFTEST_RECORD = ".selftest"
WRITTEN_BY = b"# Written by ray-tasks"
AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")
EXIT_BUSY = 3
STOP_ROUNDS = 3
LATE_GRACE = 1.0


def cluster_processes(home):
    """(pid, comm, title) of every live process of the cluster installed in ``home``.

    Only processes of this PID namespace count: containers (or test hosts) nested in this
    machine may use the same installation path for clusters of their own."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid() or not belongs(int(entry), home):
            continue
        try:
            with open(f"/proc/{entry}/comm") as handle:
                comm = handle.read().strip()
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                title = handle.read().split(b"\0")[0].decode(errors="replace").strip()
        except OSError:
            continue
        found.append((int(entry), comm, title))
    return found


def belongs(pid, home):
    """Whether ``pid`` is, right now, a process of the cluster installed in ``home``: in
    this PID namespace, with the marker in its environment (a PID reused by another
    program, or a process that exec-ed one without the marker, is not)."""
    try:
        if os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid"):
            return False
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return f"{MARKER}={home}".encode() in handle.read().split(b"\0")
    except OSError:
        return False


def is_worker(title):
    """A Ray worker process (idle or running a task), not one of the node agents."""
    return title.startswith("ray::") and title not in AGENTS


def ray_version(venv):
    """The Ray release installed in ``venv``, or None."""
    lib = os.path.join(venv, "lib")
    found = [name for python in entries(lib) if python.startswith("python")
             for name in entries(os.path.join(lib, python, "site-packages"))
             if name.startswith("ray-") and name.endswith(".dist-info")]
    return found[0][len("ray-"):-len(".dist-info")] if found else None


def free_bytes(path):
    """Free bytes on the filesystem holding ``path`` (or its nearest existing parent)."""
    while not os.path.exists(path):
        path = os.path.dirname(path)
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def venv_support():
    """Whether ``python -m venv`` can bootstrap pip (Debian splits it off as python3.X-venv).

    A bare directory where ensurepip should be imports as an empty namespace package."""
    import importlib.util
    spec = importlib.util.find_spec("ensurepip")
    return spec is not None and spec.origin is not None


def port_free(port):
    """Whether a TCP port can be listened on here (Ray's head needs its GCS port).

    SO_REUSEADDR, as Ray's GCS sets it: connections of a stopped head that linger in
    TIME_WAIT do not count, only a process listening on the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe_socket:
        probe_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe_socket.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def ssh_server_address():
    """The address this node's SSH server took the controller's connection on (the third
    field of SSH_CONNECTION): the node's own, even through a jump host or a NAT."""
    fields = os.environ.get("SSH_CONNECTION", "").split()
    return fields[2] if len(fields) == 4 else None


def route_to(target, port):
    """``target`` as this node resolves it and this node's source address towards it (a
    route lookup: connecting a UDP socket sends no packet); or why there is none."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(target, port,
                                                             type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, kind, proto) as udp:
            udp.connect(address)
            return {"target": address[0], "source": udp.getsockname()[0]}
    except OSError as error:
        return {"target": None, "source": None, "error": error.strerror or str(error)}


def addresses(head, port):
    """Where this node is reached: its SSH server's address and, when the head's name is
    given, its route towards the head."""
    found = {"ssh_server": ssh_server_address()}
    if head:
        found["to_head"] = dict(route_to(head, port), name=head)
    return found


def file_digest(path):
    """The sha256 of a regular file's bytes (not following a symlink), or None."""
    if os.path.islink(path) or not os.path.isfile(path):
        return None
    import hashlib
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (OSError, ValueError):
        return None


def state_owner(state):
    """"ours" when ray-tasks made ``state`` (its owner file is there), "absent", or
    "foreign" (something else holds the name)."""
    if not os.path.lexists(state):
        return "absent"
    owned = os.path.isdir(state) and os.path.isfile(os.path.join(state, OWNER_FILE))
    return "ours" if owned else "foreign"


def setup_env_owner(home, state):
    """Whose setup-env.sh is there: "absent"; "ours" (ray-tasks recorded its sha256);
    "legacy" (written by an earlier ray-tasks, which kept no record: its first line says so);
    else "foreign" (the user's, or one of ours the user changed)."""
    path = os.path.join(home, SETUP_ENV)
    if not os.path.lexists(path):
        return "absent"
    found = file_digest(path)
    record = read_text(os.path.join(state, SETUP_ENV_RECORD))
    if found and record is not None:
        return "ours" if found in record.split() else "foreign"
    if found and state_owner(state) != "foreign":
        with open(path, "rb") as handle:
            if handle.readline().startswith(WRITTEN_BY):
                return "legacy"
    return "foreign"


def entries(folder):
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def ownership(home):
    """The probe's answer about what ray-tasks owns here (see ray_commands.py)."""
    state = os.path.join(home, STATE_DIR)
    owner = state_owner(state)
    ours = owner == "ours"
    requirements = os.path.join(state, "worker_code", "requirements.txt")
    worker_requirements = file_digest(requirements) if ours else None
    return {
        "state_dir": owner,
        "setup_env": setup_env_owner(home, state),
        "setup_env_sha256": file_digest(os.path.join(home, SETUP_ENV)),
        "venvs": entries(os.path.join(state, "venvs")) if ours else [],
        "codes": entries(os.path.join(state, "code")) if ours else [],
        "uvs": entries(os.path.join(state, "uv")) if ours else [],
        "worker_requirements": worker_requirements[:16] if worker_requirements else None,
    }


def installation(home):
    """The probe's answer about the current venv and worker code."""
    state = os.path.join(home, STATE_DIR)
    venv = os.path.join(state, "venv")
    target = os.path.realpath(venv) if os.path.islink(venv) else None
    complete = bool(target) and os.path.exists(os.path.join(target, ".complete"))
    code = os.path.join(state, "worker_code")
    requirements = read_text(os.path.join(target, REQUIREMENTS_RECORD)) if complete else None
    selftest = read_text(os.path.join(target, SELFTEST_RECORD)) if complete else None
    return {
        "ray": ray_version(target) if complete else None,
        "venv": target if complete else None,
        "venv_name": os.path.basename(os.readlink(venv)) if complete else None,
        "requirements": requirements.strip() if requirements else None,
        "selftest": selftest.strip() if selftest else None,
        "worker_code": os.path.basename(os.path.realpath(code)) if os.path.islink(code) else None,
    }


def probe(home, port, head=""):
    """Everything a task needs to know about this node, as one JSON object."""
    state = os.path.join(home, STATE_DIR)
    processes = cluster_processes(home)
    titles = [title for _, _, title in processes]
    comms = [comm for _, comm, _ in processes]
    workers = [title for title in titles if is_worker(title)]
    try:
        with open(os.path.join(state, "cluster.json")) as handle:
            cluster = json.load(handle)
    except (OSError, ValueError):
        cluster = None
    libc = os.confstr("CS_GNU_LIBC_VERSION") if "CS_GNU_LIBC_VERSION" in os.confstr_names else ""
    return {
        "hostname": socket.gethostname(),
        "home": home,
        "python": sys.version.split()[0],  # as platform.python_version() says it
        "venv_support": venv_support(),
        "root": os.geteuid() == 0,
        "machine": os.uname().machine,
        "glibc": libc.split()[-1] if libc.startswith("glibc") else "",
        **installation(home),
        "cluster": cluster,
        "raylet": "raylet" in comms,
        "gcs": "gcs_server" in comms,
        "processes": len(processes),
        "workers": len(workers),
        "busy": sorted(title for title in workers if "IDLE" not in title),
        "port_free": port_free(port),
        "disk_free": free_bytes(home),
        "shm_free": free_bytes("/dev/shm") if os.path.isdir("/dev/shm") else 0,
        "address": addresses(head, port),
        **ownership(home),
    }


def signal_members(pids, signum, home):
    """Send ``signum`` to each of ``pids`` that still belongs to the cluster (checked just
    before, so that a PID reused meanwhile by another program is never signalled)."""
    for pid in pids:
        if not belongs(pid, home):
            continue
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def wait_gone(pids, deadline):
    """Wait until none of ``pids`` is alive or the deadline passes; return those left."""
    left = list(pids)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [pid for pid in left if os.path.exists(f"/proc/{pid}") and not _zombie(pid)]
    return left


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def terminate(home, processes, grace):
    """SIGTERM ``processes`` (the GCS last), then SIGKILL those of them still in the cluster
    after ``grace`` seconds; returns how many were killed."""
    deadline = time.monotonic() + grace
    others = [pid for pid, comm, _ in processes if comm != "gcs_server"]
    gcs = [pid for pid, comm, _ in processes if comm == "gcs_server"]
    signal_members(others, signal.SIGTERM, home)
    left = wait_gone(others, time.monotonic() + grace / 2)
    signal_members(gcs, signal.SIGTERM, home)
    left += wait_gone(gcs, deadline)
    left = [pid for pid in left if belongs(pid, home)]
    signal_members(left, signal.SIGKILL, home)
    wait_gone(left, time.monotonic() + 2)
    return len(left)


def stop(home, grace):
    """Stop the cluster's processes: SIGTERM, then SIGKILL what is left; then again for
    processes of the cluster that appeared meanwhile (children started late), a few times
    at most. Exit 1 naming what still runs after that."""
    processes = cluster_processes(home)
    if not processes:
        print("nothing running")
        return 0
    stopped = killed = 0
    for _ in range(STOP_ROUNDS):
        killed += terminate(home, processes, grace)
        stopped += len(processes)
        processes = cluster_processes(home)
        if not processes:
            break
        grace = min(grace, LATE_GRACE)
    print(f"stopped {stopped} processes ({killed} killed after the grace period)")
    if processes:
        print(f"still running after {STOP_ROUNDS} rounds (new processes keep appearing): "
              + ", ".join(f"{pid} {comm}" for pid, comm, _ in processes))
        return 1
    return 0


def kill_workers(home, force):
    """End the Ray worker processes so that new ones, with fresh imports, replace them."""
    workers = [(pid, title) for pid, _, title in cluster_processes(home) if is_worker(title)]
    busy = sorted(title for _, title in workers if "IDLE" not in title)
    if busy and not force:
        print("busy workers: " + ", ".join(busy))
        return EXIT_BUSY
    signal_members([pid for pid, _ in workers], signal.SIGKILL, home)
    wait_gone([pid for pid, _ in workers], time.monotonic() + 5)
    print(f"replaced {len(workers)} worker processes" + (f" ({len(busy)} busy)" if busy else ""))
    return 0


def started(pid):
    """When ``pid`` started (clock ticks since boot; 0 once it is gone): with the PID, it
    names one process even if the PID is reused later."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def old_workers(home, old):
    """{pid: title} of the worker processes in ``old`` ({pid: start}) still running."""
    return {pid: title for pid, _, title in cluster_processes(home)
            if is_worker(title) and pid in old and started(pid) == old[pid]}


def replace_idle_workers(home, timeout, force):
    """End the worker processes running now, each once it is idle (new ones, with fresh
    imports, replace them), for at most ``timeout`` seconds; then those still busy are
    killed with ``force``, or named (exit 3)."""
    old = {pid: started(pid) for pid, _, title in cluster_processes(home) if is_worker(title)}
    deadline = time.monotonic() + timeout
    workers = old_workers(home, old)
    while workers and time.monotonic() < deadline:
        signal_members([pid for pid, title in workers.items() if "IDLE" in title],
                       signal.SIGKILL, home)
        time.sleep(0.1)
        workers = old_workers(home, old)
    if workers and not force:
        print("busy workers: " + ", ".join(sorted(workers.values())))
        return EXIT_BUSY
    signal_members(list(workers), signal.SIGKILL, home)
    wait_gone(list(old), time.monotonic() + 5)
    print(f"replaced {len(old)} worker processes"
          + (f" ({len(workers)} busy)" if workers else ""))
    return 0


def main(argv):
    action, home = argv[1], os.path.abspath(argv[2])
    if action == "probe":
        print(json.dumps(probe(home, int(argv[3]), argv[4] if len(argv) > 4 else "")))
        return 0
    if action == "route":
        print(json.dumps(route_to(argv[3], int(argv[4]))))
        return 0
    if action == "stop":
        return stop(home, float(argv[3]) if len(argv) > 3 else 3.0)
    if action == "kill-workers":
        return kill_workers(home, "--force" in argv[3:])
    if action == "replace-idle-workers":
        return replace_idle_workers(home, float(argv[3]), "--force" in argv[4:])
    print(f"unknown action {action!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
