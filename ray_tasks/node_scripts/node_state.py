"""Node side: report this node's installation and Ray processes, stop them, replace workers.

Runs with the node's plain Python (standard library only), before and after Ray is installed.
The Ray processes of one ray-tasks cluster are those whose environment holds
RAY_TASKS_HOME=<installation directory>: `ray start` is given it, and every process Ray
spawns inherits it. Nothing else on the machine is touched (unlike `ray stop`).

    python3 node_state.py probe DIR PORT
    python3 node_state.py stop DIR [GRACE_SECONDS]
    python3 node_state.py kill-workers DIR [--force]
"""

import glob
import hashlib
import json
import os
import platform
import signal
import socket
import sys
import time

MARKER = "RAY_TASKS_HOME"
# What ray-tasks owns under the installation directory (the same names as ray_commands.py).
STATE_DIR = ".ray-tasks"
OWNER_FILE = "owner"
SETUP_ENV = "setup-env.sh"
SETUP_ENV_RECORD = "setup-env.sha256"
REQUIREMENTS_RECORD = ".requirements"
WRITTEN_BY = b"# Written by ray-tasks"
AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")
EXIT_BUSY = 3


def cluster_processes(home):
    """(pid, comm, title) of every live process of the cluster installed in ``home``.

    Only processes of this PID namespace count: containers (or test hosts) nested in this
    machine may use the same installation path for clusters of their own."""
    wanted = f"{MARKER}={home}".encode()
    own_namespace = os.readlink("/proc/self/ns/pid")
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != own_namespace:
                continue
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if wanted not in handle.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/comm") as handle:
                comm = handle.read().strip()
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                title = handle.read().split(b"\0")[0].decode(errors="replace").strip()
        except OSError:
            continue
        found.append((int(entry), comm, title))
    return found


def is_worker(title):
    """A Ray worker process (idle or running a task), not one of the node agents."""
    return title.startswith("ray::") and title not in AGENTS


def ray_version(venv):
    """The Ray release installed in ``venv``, or None."""
    found = glob.glob(os.path.join(venv, "lib", "python*", "site-packages", "ray-*.dist-info"))
    if not found:
        return None
    return os.path.basename(found[0])[len("ray-"):-len(".dist-info")]


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


def file_digest(path):
    """The sha256 of a regular file's bytes (not following a symlink), or None."""
    if os.path.islink(path) or not os.path.isfile(path):
        return None
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
        "worker_requirements": worker_requirements[:16] if worker_requirements else None,
    }


def probe(home, port):
    """Everything a task needs to know about this node, as one JSON object."""
    state = os.path.join(home, STATE_DIR)
    venv = os.path.join(state, "venv")
    target = os.path.realpath(venv) if os.path.islink(venv) else None
    complete = bool(target) and os.path.exists(os.path.join(target, ".complete"))
    processes = cluster_processes(home)
    titles = [title for _, _, title in processes]
    comms = [comm for _, comm, _ in processes]
    workers = [title for title in titles if is_worker(title)]
    code = os.path.join(state, "worker_code")
    try:
        with open(os.path.join(state, "cluster.json")) as handle:
            cluster = json.load(handle)
    except (OSError, ValueError):
        cluster = None
    libc = os.confstr("CS_GNU_LIBC_VERSION") if "CS_GNU_LIBC_VERSION" in os.confstr_names else ""
    requirements = read_text(os.path.join(target, REQUIREMENTS_RECORD)) if complete else None
    return {
        "hostname": socket.gethostname(),
        "home": home,
        "python": platform.python_version(),
        "venv_support": venv_support(),
        "root": os.geteuid() == 0,
        "machine": platform.machine(),
        "glibc": libc.split()[-1] if libc.startswith("glibc") else "",
        "ray": ray_version(target) if complete else None,
        "venv": target if complete else None,
        "venv_name": os.path.basename(os.readlink(venv)) if complete else None,
        "requirements": requirements.strip() if requirements else None,
        "worker_code": os.path.basename(os.path.realpath(code)) if os.path.islink(code) else None,
        "cluster": cluster,
        "raylet": "raylet" in comms,
        "gcs": "gcs_server" in comms,
        "processes": len(processes),
        "workers": len(workers),
        "busy": sorted(title for title in workers if "IDLE" not in title),
        "port_free": port_free(port),
        "disk_free": free_bytes(home),
        "shm_free": free_bytes("/dev/shm") if os.path.isdir("/dev/shm") else 0,
        **ownership(home),
    }


def signal_all(pids, signum):
    for pid in pids:
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


def stop(home, grace):
    """Stop the cluster's processes: SIGTERM (GCS last), then SIGKILL what is left."""
    processes = cluster_processes(home)
    if not processes:
        print("nothing running")
        return 0
    deadline = time.monotonic() + grace
    others = [pid for pid, comm, _ in processes if comm != "gcs_server"]
    gcs = [pid for pid, comm, _ in processes if comm == "gcs_server"]
    signal_all(others, signal.SIGTERM)
    left = wait_gone(others, time.monotonic() + grace / 2)
    signal_all(gcs, signal.SIGTERM)
    left += wait_gone(gcs, deadline)
    signal_all(left, signal.SIGKILL)
    wait_gone(left, time.monotonic() + 2)
    print(f"stopped {len(processes)} processes ({len(left)} killed after {grace:g}s)")
    return 0


def kill_workers(home, force):
    """End the Ray worker processes so that new ones, with fresh imports, replace them."""
    workers = [(pid, title) for pid, _, title in cluster_processes(home) if is_worker(title)]
    busy = sorted(title for _, title in workers if "IDLE" not in title)
    if busy and not force:
        print("busy workers: " + ", ".join(busy))
        return EXIT_BUSY
    signal_all([pid for pid, _ in workers], signal.SIGKILL)
    wait_gone([pid for pid, _ in workers], time.monotonic() + 5)
    print(f"replaced {len(workers)} worker processes" + (f" ({len(busy)} busy)" if busy else ""))
    return 0


def main(argv):
    action, home = argv[1], os.path.abspath(argv[2])
    if action == "probe":
        print(json.dumps(probe(home, int(argv[3]))))
        return 0
    if action == "stop":
        return stop(home, float(argv[3]) if len(argv) > 3 else 3.0)
    if action == "kill-workers":
        return kill_workers(home, "--force" in argv[3:])
    print(f"unknown action {action!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
