"""A fake transport for fast orchestration tests: scripted nodes, no SSH, no traffic.

A FakeHost is a real ray-tasks ``Host`` (so ``run``, ``probe``, the runner and the tasks
above the transport are the real code) whose ``_run`` and ``put`` answer from a FakeNode:
first the node's scripted rules (a substring or regex of the command -> ``(exit, stdout,
stderr)``, or a callable ``(node, command)`` returning that, free to change the node), then
the node plays the real node scripts from its state (Ray release, venvs, raylet/GCS running,
alive in the head's view, worker code): the probe, the scoped stop, ``ray start``, the
``cluster_check.py`` waits and tests answer with the shapes the real scripts print. Every
command and put is logged on its node (``node.log``) and in one cluster-wide order
(``cluster.log``). The inline node_state.py source reads ``node_state.py`` in the logs
(network_check.py's, ``network_check.py``; the fake network lets everything through).
"""

import dataclasses
import functools
import json
import pathlib
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import threading

import invoke

import ray_tasks
from ray_tasks import collection, hosts

SCRIPTS = pathlib.Path(ray_tasks.__file__).parent / "node_scripts"
HOME = "/opt/rt"  # the installation directory of every fake node
PYTHON = "3.11.7"
STATE = f"{HOME}/.ray-tasks"
CLUSTER_FILE = f"{STATE}/cluster.json"
CLEAR_NETWORK = json.dumps({"problems": [], "notes": [], "failed": [], "others": {}})


@functools.cache
def real_probe():
    """The answer of the real ``node_state.py probe``, run once here in an empty temporary
    installation directory: the fake's probe is this with the fake node's facts put in, so
    its keys cannot drift from the script's."""
    with tempfile.TemporaryDirectory() as home:
        printed = subprocess.run([sys.executable, SCRIPTS / "node_state.py", "probe", home,
                                  "6379", "127.0.0.1"], capture_output=True, text=True,
                                 check=True).stdout
    return json.loads(printed.splitlines()[-1])


@functools.cache
def inline_script(name="node_state.py"):
    """How a node script's source appears in a command (passed inline to ``python -c``)."""
    return shlex.quote((SCRIPTS / name).read_text(encoding="utf-8"))


@dataclasses.dataclass
class FakeNode:
    """One scripted machine: its state, its rules and what it was sent."""

    address: str
    venv: str | None = None  # the current venv's name, under .ray-tasks/venvs
    venvs: list = dataclasses.field(default_factory=list)
    owned: bool = False  # ray-tasks' own directory is there
    raylet: bool = False
    gcs: bool = False
    alive: bool = False  # an alive node in the head's view of the cluster
    worker_code: str | None = None
    selftest: str | None = None  # when the current venv passed runtest.py
    uvs: list = dataclasses.field(default_factory=list)  # the entries of .ray-tasks/uv
    resources: dict = dataclasses.field(default_factory=dict)  # as Ray reports them
    files: dict = dataclasses.field(default_factory=dict)
    rules: list = dataclasses.field(default_factory=list)
    log: list = dataclasses.field(default_factory=list)
    opened: int = 0

    def on(self, pattern, answer):
        """Answer commands matching ``pattern`` (a substring, or a compiled regex) with
        ``answer``: ``(exit, stdout, stderr)`` or a callable ``(node, command)`` giving it."""
        self.rules.append((pattern, answer))

    def sent(self, pattern):
        """The logged commands and puts (``put PATH MODE``) of this node matching ``pattern``."""
        return [entry for entry in self.log if matches(pattern, entry)]

    @property
    def ray(self):
        """The Ray release of the current venv (None: no Ray installed)."""
        return self.venv.split("-")[1] if self.venv else None


def matches(pattern, text):
    """Whether ``text`` holds ``pattern``, a substring or a compiled regex."""
    if isinstance(pattern, str):
        return pattern in text
    return pattern.search(text) is not None


class FakeHost(hosts.Host):
    """The transport of one task's connection to a FakeNode of ``cluster``."""

    connected = True

    def __init__(self, node, settings, cluster):
        super().__init__(node, settings)
        self.cluster = cluster
        self.fake = cluster.nodes[node.host]

    def open(self):
        self.fake.opened += 1

    def _run(self, command, timeout, in_stream):
        exited, stdout, stderr = self.cluster.answer(self.fake, command)
        return invoke.runners.Result(stdout=stdout, stderr=stderr, exited=exited,
                                     command=command)

    def put(self, data, path, mode=0o644):
        self.cluster.record(self.fake, f"put {path} {mode:04o}")
        self.fake.files[path] = data

    def close(self):
        pass


class FakeCluster:
    """Fake nodes by address, the head first; ``journal`` (a path) also gets every log
    entry as a JSON line at once, for a run that ends in ``os._exit``."""

    def __init__(self, journal=None):
        self.nodes = {}
        self.log = []
        self.journal = journal
        self.cancelled = set()
        self.changed = threading.Condition()
        self.plays = [
            (r"node_state\.py probe", self.probe),
            (r"node_state\.py route", self.route),
            (r"node_state\.py stop", self.stop),
            (r"node_state\.py kill-workers", lambda node, match: "replaced 0 worker processes"),
            (r"network_check\.py", lambda node, match: CLEAR_NETWORK),
            (r"bin/ray start --head", self.start_head),
            (r"bin/ray start --address=", self.join),
            (r"cluster_check\.py wait (\S+) (\d+)", self.wait),
            (r"cluster_check\.py test (\S+)", self.test),
            (r"cluster_check\.py drain (\S+)", self.drain),
            (r"node_state\.py replace-idle-workers",
             lambda node, match: "replaced 0 worker processes"),
            (r"venvs/([^/\s']+)/\.complete", self.build_venv),
            (r"ln -sfn \S+/venvs/(\S+) ", self.switch_venv),
            (r"tar -xzf .* -C \S+/code/(\w+)\.partial", self.unpack_code),
            (r"mkdir -m 700", self.claim),
            (r"runtest\.py", self.selftest),
            (r"touch (\S+\.cancel)", lambda node, match: self.cancelled.add(match[1])),
            (r"wheel_relay\.py serve", lambda node, match: json.dumps({"pid": 4242})),
            (r"wheel_relay\.py fetch (\S+) http://([\d.]+):\d+", self.fetch_wheels),
        ]

    def add(self, address, ray=None):
        """A node at ``address``, with Ray ``ray`` installed by ray-tasks (None: nothing)."""
        node = FakeNode(address)
        if ray:
            node.venv = f"ray-{ray}-py{PYTHON}"
            node.venvs, node.owned = [node.venv], True
        self.nodes[address] = node
        return node

    @property
    def head(self):
        return next(iter(self.nodes.values()))

    def make_host(self, node, settings, known_hosts, config):
        return FakeHost(node, settings, self)

    def forget(self):
        """Forget what was sent so far: the logs and the connection counts."""
        self.log.clear()
        for node in self.nodes.values():
            node.log.clear()
            node.opened = 0

    def record(self, node, entry):
        with self.changed:
            node.log.append(entry)
            self.log.append((node.address, entry))
            if self.journal:
                with open(self.journal, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps([node.address, entry]) + "\n")

    def answer(self, node, command):
        """Log ``command``, then answer it from the node's rules, else from its state."""
        command = command.replace(inline_script(), "node_state.py")
        command = command.replace(inline_script("network_check.py"), "network_check.py")
        command = command.replace(inline_script("wheel_relay.py"), "wheel_relay.py")
        self.record(node, command)
        answer = next((answer for pattern, answer in node.rules if matches(pattern, command)),
                      None)
        if answer is None:
            answer = self.play(node, command)
        elif callable(answer):
            answer = answer(node, command)
        with self.changed:
            self.changed.notify_all()
        return answer

    def play(self, node, command):
        """What the real node would answer (exit 0 and no output for what it only does)."""
        for pattern, play in self.plays:
            match = re.search(pattern, command)
            if match:
                printed = play(node, match)
                return printed if isinstance(printed, tuple) else (0, printed or "", "")
        return 0, "", ""

    def fetch_wheels(self, node, match):
        """A node's wheel relay fetches its peer's wheels (all it holds)."""
        folder = match[1].rstrip("/") + "/"
        peer = self.nodes[match[2]]
        wheels = {path: data for path, data in peer.files.items() if path.startswith(folder)}
        if not wheels:
            return 1, "", f"could not fetch from http://{peer.address}: refused"
        node.files.update(wheels)
        return json.dumps({"bytes": sum(len(data) for data in wheels.values())})

    def probe(self, node, match):
        """The real probe's answer with this node's facts."""
        answer = real_probe()
        venv = f"{STATE}/venvs/{node.venv}" if node.venv else None
        cluster = node.files.get(CLUSTER_FILE)
        facts = {
            "hostname": f"fake-{node.address}", "home": HOME, "python": PYTHON,
            "venv_support": True, "root": True, "ray": node.ray, "venv": venv,
            "venv_name": node.venv, "requirements": None, "selftest": node.selftest,
            "worker_code": node.worker_code,
            "cluster": json.loads(cluster) if cluster else None, "raylet": node.raylet,
            "gcs": node.gcs, "processes": 4 * node.raylet, "workers": 0, "busy": [],
            "port_free": not node.gcs, "disk_free": 100 * 2**30, "shm_free": 8 * 2**30,
            "address": {"ssh_server": node.address, "to_head": dict(
                answer["address"]["to_head"], name=self.head.address,
                target=self.head.address, source=node.address)},
            "state_dir": "ours" if node.owned else "absent",
            "setup_env": "ours" if node.owned else "absent",
            "venvs": list(node.venvs), "uvs": list(node.uvs),
            "codes": [node.worker_code] if node.worker_code else [],
            "worker_requirements": None,
        }
        assert facts.keys() <= answer.keys(), facts.keys() - answer.keys()
        return json.dumps(dict(answer, **facts))

    def route(self, node, match):
        return json.dumps({"target": self.head.address, "source": node.address})

    def stop(self, node, match):
        running = node.raylet or node.gcs
        node.raylet = node.gcs = node.alive = False
        return "stopped 4 processes (0 killed after the grace period)" if running \
            else "nothing running"

    def start_head(self, node, match):
        node.gcs = node.raylet = node.alive = True
        node.resources = started_resources(match.string)

    def join(self, node, match):
        node.raylet = node.alive = True
        node.resources = started_resources(match.string)

    def wait(self, node, match):
        """cluster_check.py wait: until every expected node is alive, the timeout or the
        cancel file; prints every node expected or alive."""
        expected = match[1].split(",")
        with self.changed:
            self.changed.wait_for(lambda: self.cancelled or all(
                self.nodes[ip].alive for ip in expected), timeout=float(match[2]))
        alive = [ip for ip, each in self.nodes.items() if each.alive]
        nodes = {ip: {"alive": ip in alive,
                      "resources": self.nodes[ip].resources if ip in alive else {}}
                 for ip in expected + alive}
        printed = json.dumps({"ok": all(ip in alive for ip in expected), "nodes": nodes})
        return int(not all(ip in alive for ip in expected)), printed, ""

    def drain(self, node, match):
        """cluster_check.py drain (run on the head): the drained node's raylet leaves."""
        drained = self.nodes[match[1]]
        drained.alive = drained.raylet = False
        return json.dumps({"ok": True, "nodes": {match[1]: {"drained": "left"}}})

    def test(self, node, match):
        nodes = {ip: {"alive": True, "errors": []} for ip in match[1].split(",")}
        return json.dumps({"ok": True, "nodes": nodes})

    def build_venv(self, node, match):
        if match[1] not in node.venvs:
            node.venvs.append(match[1])

    def switch_venv(self, node, match):
        node.venv = match[1]
        node.selftest = None  # the record is the venv's

    def selftest(self, node, match):
        node.selftest = "2026-11-27T10:00:00Z"

    def unpack_code(self, node, match):
        node.worker_code = match[1]

    def claim(self, node, match):
        node.owned = True


def started_resources(command):
    """What Ray reports of a node that ``ray start`` (``command``) started: its resource
    flags, else what Ray finds on a fake machine (2 CPUs, no GPU, 4 GiB, a 1 GiB store)."""
    flags = dict(arg[2:].split("=", 1) for arg in shlex.split(command.split(" start ", 1)[1])
                 if arg.startswith("--") and "=" in arg)
    resources = {"CPU": float(flags.get("num-cpus", 2)), "GPU": float(flags.get("num-gpus", 0)),
                 "memory": float(flags.get("memory", 4 * 2**30)),
                 "object_store_memory": float(flags.get("object-store-memory", 2**30))}
    resources.update(json.loads(flags.get("resources", "{}")))
    return {name: amount for name, amount in resources.items() if amount}


def use_fakes(monkeypatch, cluster):
    """Make every Runner of the test build its hosts as ``cluster``'s FakeHosts."""
    monkeypatch.setattr(hosts, "make_host", cluster.make_host)


def forbid_traffic(monkeypatch):
    """Refuse any network connection from this process; returns the list of attempts."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("fake_hosts: a test with fake hosts tried to connect somewhere")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def controller_env(directory, cluster, **settings):
    """The INVOKE_RAY_* environment of a controller of ``cluster`` (its nodes file, token,
    known_hosts and worker code under ``directory``), plus ``settings`` (e.g. PARALLEL="1")."""
    directory = pathlib.Path(directory)
    (directory / "nodes.txt").write_text("".join(f"{ip}\n" for ip in cluster.nodes))
    (directory / "worker").mkdir(exist_ok=True)
    (directory / "worker" / "work.py").write_text("ANSWER = 42\n")
    env = {"NODES": directory / "nodes.txt", "INSTALLATION_DIRECTORY": HOME,
           "AUTH_TOKEN_FILE": directory / "auth_token", "KNOWN_HOSTS": directory / "known",
           "WORKER_DIR": directory / "worker", "NUM_WORKERS": "2", "JOIN_TIMEOUT": "5",
           **settings}
    return {f"INVOKE_RAY_{key}": str(value) for key, value in env.items()}


def run_inv(*args):
    """Run ``inv ARGS`` in this process with the real task collection; the exit status."""
    try:
        invoke.Program(namespace=collection.namespace, binary="inv").run(["inv", *args])
    except SystemExit as exit:
        return exit.code
    return 0
