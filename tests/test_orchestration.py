"""The orchestration over fake hosts (tests/fake_hosts.py), in milliseconds: update's
all-or-nothing, a stale node rejoining, partial failures, --hosts subsets, the order of
phases, Ctrl-C. The tasks, the runner and every step are the real code; only the transport
is scripted, and no connection leaves this process."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import types

import pytest

from conftest import REPO
from fake_hosts import (CLUSTER_FILE, FakeCluster, controller_env, forbid_traffic, matches,
                        run_inv, use_fakes)
from ray_tasks import config
from ray_tasks.inventory import parse_nodes
from ray_tasks.runner import Runner

OLD, NEW = "2.59.0", "2.60.0"
HEAD, W2, W3 = "10.9.0.1", "10.9.0.2", "10.9.0.3"
BUILD = re.compile(r"venvs/\S+/\.complete")
SWITCH_TO_NEW = re.compile(rf"ln -sfn \S+/venvs/ray-{re.escape(NEW)}")
SWITCH_TO_OLD = re.compile(rf"ln -sfn \S+/venvs/ray-{re.escape(OLD)}")
STOP = "node_state.py stop"
START = "bin/ray start"
PROBE = "node_state.py probe"


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """An empty FakeCluster that every Runner of the test uses; fails the test if anything
    tried to open a network connection. HOME is a temporary one (internal errors are logged
    under it)."""
    for key in list(os.environ):
        if key.startswith("INVOKE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cluster = FakeCluster()
    use_fakes(monkeypatch, cluster)
    attempts = forbid_traffic(monkeypatch)
    handler = signal.getsignal(signal.SIGINT)  # the runner takes SIGINT over
    yield cluster
    signal.signal(signal.SIGINT, handler)
    assert attempts == [], f"connections were attempted: {attempts}"


@pytest.fixture
def inv(fake, monkeypatch, tmp_path, capsys):
    """Run ``inv ARGS`` in this process against the fake cluster; returns its exit status
    and output."""
    def run(*args):
        for key, value in controller_env(tmp_path, fake).items():
            monkeypatch.setenv(key, value)
        code = run_inv(*args)
        captured = capsys.readouterr()
        return types.SimpleNamespace(code=code, out=captured.out, err=captured.err)
    return run


def three(fake, ray=OLD):
    """Three fake nodes, the head first, with Ray ``ray`` installed (None: nothing)."""
    return [fake.add(address, ray) for address in (HEAD, W2, W3)]


@pytest.fixture
def running(fake, inv):
    """Three nodes running a cluster on Ray OLD, started by the real start task; what it
    sent is forgotten."""
    nodes = three(fake)
    started = inv("start")
    assert started.code == 0, started.out + started.err
    assert all(node.raylet and node.alive for node in nodes)
    fake.forget()
    return nodes


def position(fake, address, pattern):
    """The index in the cluster-wide log of the first entry sent to ``address`` matching
    ``pattern``."""
    found = [index for index, (where, entry) in enumerate(fake.log)
             if where == address and matches(pattern, entry)]
    assert found, f"nothing matching {pattern!r} was sent to {address}"
    return found[0]


def update_failing_on(inv, node, pattern, error):
    """``inv update`` to NEW where ``node`` fails the commands matching ``pattern``;
    checks that the update fails naming just that node, and returns the run."""
    node.on(pattern, (1, "", error))
    ran = inv("update", f"--version={NEW}")
    assert ran.code == 1
    assert f"update failed on 1 of 3 nodes: {node.address}\n" in ran.err
    return ran


def test_update_switches_nothing_when_one_node_cannot_build(fake, inv, running):
    head, w2, w3 = running
    ran = update_failing_on(inv, w2, BUILD, "ERROR: No matching distribution for ray==2.60.0")
    assert "nothing was switched" in ran.out
    assert head.sent(BUILD) and w3.sent(BUILD)
    for node in running:
        assert not node.sent("ln -sfn"), node.log
        assert not node.sent(STOP) and not node.sent(START), node.log
        assert node.ray == OLD and node.raylet


def test_update_switches_back_when_one_node_cannot_switch(fake, inv, running):
    head, w2, w3 = running
    ran = update_failing_on(inv, w2, SWITCH_TO_NEW, "mv: cannot move '.ray-tasks/venv.new'")
    assert "switching the others back" in ran.out
    assert [address for address, entry in fake.log if SWITCH_TO_OLD.search(entry)] \
        in ([HEAD, W3], [W3, HEAD])
    for node in (head, w3):  # restarted on the old release, after switching back
        assert position(fake, node.address, START) > position(fake, node.address, SWITCH_TO_OLD)
        assert node.ray == OLD and node.raylet and node.alive
    assert w2.ray == OLD and not w2.sent(START)


def test_update_phases_in_order(fake, inv, running):
    ran = inv("update", f"--version={NEW}")
    assert ran.code == 0, ran.out + ran.err
    built = max(position(fake, address, BUILD) for address in (HEAD, W2, W3))
    workers_stopped = [position(fake, address, STOP) for address in (W2, W3)]
    head_stopped = position(fake, HEAD, STOP)
    switched = [position(fake, address, SWITCH_TO_NEW) for address in (HEAD, W2, W3)]
    started = [position(fake, address, START) for address in (HEAD, W2, W3)]
    assert built < min(workers_stopped)
    assert max(workers_stopped) < head_stopped < min(switched)
    assert max(switched) < started[0] < min(started[1:])
    assert position(fake, HEAD, "cluster_check.py test") > max(started)
    assert all(node.ray == NEW and node.alive for node in running)


def test_stop_stops_the_workers_before_the_head(fake, inv, running):
    ran = inv("stop")
    assert ran.code == 0, ran.out + ran.err
    assert max(position(fake, W2, STOP), position(fake, W3, STOP)) < position(fake, HEAD, STOP)
    assert not any(node.raylet for node in running)


def test_start_rejoins_a_node_the_head_does_not_see(fake, inv, running):
    head, w2, w3 = running
    w2.alive = False  # its raylet runs, but the head's GCS lost it
    ran = inv("start")
    assert ran.code == 0, ran.out + ran.err
    assert f"[{W2}] Ray runs here but the node is not in the cluster: restarting it" in ran.out
    assert position(fake, W2, STOP) < position(fake, W2, "bin/ray start --address=")
    assert w2.alive
    for node in (head, w3):
        assert not node.sent(STOP) and not node.sent(START), node.log


def test_a_failed_host_is_left_out_of_the_following_steps(fake, inv):
    head, w2, w3 = three(fake, ray=None)
    w2.on(BUILD, (1, "", "ERROR: pip could not install ray"))
    ran = inv("install", f"--version={NEW}")
    assert ran.code == 1
    assert w2.sent(BUILD) == w2.log[-1:], "commands were sent after the failure"
    summary = ran.out.split("install: summary")[1]
    assert re.search(rf"^{re.escape(W2)}\s+FAILED\s.*could not install", summary, re.M)
    assert not re.search(rf"^{re.escape(HEAD)}\s", summary, re.M), "an ok host in the table"
    assert re.search(r"^install: 1 of 3 nodes FAILED, 2 ok, in \d+\.\d s$", summary, re.M)
    assert f"install failed on 1 of 3 nodes: {W2}\n" in ran.err
    assert re.search(rf"retry just them: inv install .*--hosts={re.escape(W2)}$", ran.err,
                     re.M)
    for node in (head, w3):
        assert node.ray == NEW
        assert node.sent("put /opt/rt/.ray-tasks/runtest.py")


def test_install_on_one_host_only_probes_the_head(fake, inv):
    head, w2, w3 = fake.add(HEAD, OLD), fake.add(W2), fake.add(W3, OLD)
    ran = inv("install", f"--hosts={W2}", f"--version={OLD}")
    assert ran.code == 0, ran.out + ran.err
    assert len(head.log) == 1 and PROBE in head.log[0], head.log
    assert w3.opened == 0 and w3.log == []
    assert w2.ray == OLD and w2.sent(BUILD) and w2.sent("runtest.py")


def test_stop_on_one_host_stops_only_it(fake, inv, running):
    head, w2, w3 = running
    ran = inv("stop", f"--hosts={W2}")
    assert ran.code == 0, ran.out + ran.err
    assert w2.sent(STOP) and not w2.raylet
    for node in (head, w3):
        assert node.opened == 0 and node.log == [] and node.raylet


def start_args(node):
    """The arguments of the one ``ray start`` sent to ``node``."""
    started, = node.sent(START)
    return shlex.split(started.split("bin/ray start ", 1)[1])


def fleet_inv(fake, monkeypatch, tmp_path, nodes_txt, **settings):
    """Run ``inv ARGS`` against the fake cluster with the nodes file ``nodes_txt``."""
    (tmp_path / "fleet.txt").write_text(nodes_txt)
    env = controller_env(tmp_path, fake, NODES=tmp_path / "fleet.txt", **settings)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return run_inv


@pytest.mark.parametrize("num_workers, others", [("", []), ("3", ["--num-cpus=3"])])
def test_ray_start_carries_each_nodes_own_resources(fake, monkeypatch, tmp_path, capsys,
                                                    num_workers, others):
    head, w2, w3 = three(fake)
    run = fleet_inv(fake, monkeypatch, tmp_path, (
        f"{HEAD}  cpus=4 gpus=1 resource.ssd=2 resource.fast=0.5  # head\n"
        f"{W2} memory=1G object_store_memory=200M\n{W3}\n"), NUM_WORKERS=num_workers)
    assert run("start") == 0, capsys.readouterr()
    resources = re.compile(r"^--(num-cpus|num-gpus|memory|object-store-memory|resources)=")
    assert [arg for arg in start_args(head) if resources.match(arg)] == [
        "--num-cpus=4", "--num-gpus=1", '--resources={"fast": 0.5, "ssd": 2}']
    assert [arg for arg in start_args(w2) if resources.match(arg)] == [
        *others, f"--memory={2**30}", f"--object-store-memory={200 * 2**20}"]
    assert [arg for arg in start_args(w3) if resources.match(arg)] == others
    out = capsys.readouterr().out
    assert re.search(r"^node\s+ip\s+CPUs\s+GPUs\s+memory\s+object store\s+custom resources$",
                     out, re.M), out
    assert re.search(rf"^{re.escape(HEAD)}\s+\S+\s+4\s+1\s+4\.0 GiB\s+1\.0 GiB\s+"
                     r"fast=0\.5,ssd=2$", out, re.M), out
    assert re.search(rf"^{re.escape(W2)}\s+\S+\s+{num_workers or 2}\s+0\s+1\.0 GiB\s+"
                     r"200 MiB\s+-$", out, re.M), out


def test_status_shows_the_resources_ray_reports_asking_the_head_once(fake, inv, running):
    head, w2, w3 = running
    ran = inv("status")
    assert ran.code == 0, ran.out + ran.err
    table = ran.out.split("resources (as Ray reports them, from the head):\n")[1]
    assert re.search(r"^10\.9\.0\.\[1-3\]\s+10\.9\.0\.\[1-3\]\s+2\s+0\s+4\.0 GiB\s+1\.0 GiB\s+-$",
                     table, re.M), table
    assert len(head.sent("cluster_check.py")) == 1
    assert not w2.sent("cluster_check.py") and not w3.sent("cluster_check.py")


def test_a_node_joining_a_cluster_where_ray_counted_the_cpus_does_so_too(fake, inv):
    head, w2, w3 = three(fake)
    for node in (head, w2):
        node.files[CLUSTER_FILE] = json.dumps({"head": f"{HEAD}:6379", "num_workers": ""})
        node.gcs, node.raylet, node.alive = node is head, True, True
    ran = inv("start")  # with INVOKE_RAY_NUM_WORKERS=2
    assert ran.code == 0, ran.out + ran.err
    assert ("started with num_workers unset (Ray decides) (recorded on the head): new nodes "
            "join with that, not with num_workers=2") in ran.out
    assert not any(arg.startswith("--num-cpus") for arg in start_args(w3))


def test_a_node_with_settings_is_retried_by_its_address(fake, monkeypatch, tmp_path, capsys):
    head, w2, w3 = three(fake)
    w2.on("bin/ray start", (1, "", "raylet died"))
    run = fleet_inv(fake, monkeypatch, tmp_path,
                    f"{HEAD}\n{W2} cpus=2 ray_ip={W2}\n{W3} resource.ssd=1\n",
                    NUM_WORKERS="")
    assert run("start") == 1
    assert re.search(r"retry just them: inv start --nodes=\S+ --installation-directory=/opt/rt "
                     rf"--worker-dir=\S+ --hosts={re.escape(W2)}$", capsys.readouterr().err, re.M)


def test_ray_ip_is_the_address_ray_uses_and_the_others_route_towards(fake, monkeypatch,
                                                                     tmp_path, capsys):
    head, w2, w3 = three(fake)
    for node, source in ((w2, "10.7.0.2"), (w3, "10.7.0.3")):
        node.on("node_state.py route", (0, json.dumps({"target": "10.7.0.1",
                                                       "source": source}), ""))
    settings = config.from_mapping({"known_hosts": str(tmp_path / "known")})
    nodes = parse_nodes(f"{HEAD} ray_ip=10.7.0.1\n{W2}\n{W3} ray_ip=10.7.0.9\n")
    with Runner(settings, nodes, head=nodes[0]) as runner:
        assert [host.ip for host in runner.hosts] == ["10.7.0.1", "10.7.0.2", "10.7.0.9"]
    assert w2.sent(re.compile(r"node_state\.py route \S+ 10\.7\.0\.1 6379"))
    assert not w3.sent("node_state.py route") and not head.sent("node_state.py route")


INTERRUPTED_RUN = """
import os, re, signal, sys, time
import pytest
from fake_hosts import FakeCluster, forbid_traffic, run_inv, use_fakes

def interrupt(node, command):
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while this command runs
    time.sleep(30)
    return 0, "", ""

cluster = FakeCluster(journal=sys.argv[1])
for address in sys.argv[2:]:
    cluster.add(address, "2.59.0")
cluster.nodes[sys.argv[3]].on(re.compile(r"venvs/\\S+/\\.complete"), interrupt)
patch = pytest.MonkeyPatch()
use_fakes(patch, cluster)
forbid_traffic(patch)
sys.exit(run_inv("update", "--version=2.60.0"))
"""


def test_ctrl_c_ends_the_task_and_nothing_more_is_sent(tmp_path):
    journal = tmp_path / "journal"
    cluster = FakeCluster()
    for address in (HEAD, W2, W3):
        cluster.add(address)
    env = {key: value for key, value in os.environ.items() if not key.startswith("INVOKE_")}
    env.update(controller_env(tmp_path, cluster, PARALLEL="1"),
               PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, "tests")]),
               HOME=str(tmp_path))
    started = time.monotonic()
    ran = subprocess.run([sys.executable, "-c", INTERRUPTED_RUN, journal, HEAD, W2, W3],
                         env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 130, ran.stdout + ran.stderr
    assert time.monotonic() - started < 40
    message = ran.stderr.strip().splitlines()
    assert len(message) == 1 and message[0].startswith("interrupted: the steps under way were "
                                                        "cut off"), ran.stderr
    sent = [json.loads(line) for line in journal.read_text().splitlines()]
    assert sent[-1][0] == W2 and BUILD.search(sent[-1][1]), sent[-1]
    assert not any(address == W3 and BUILD.search(entry) for address, entry in sent)


def test_a_blocked_connection_stops_start_before_any_ray_start(fake, inv):
    head, w2, w3 = three(fake)
    w3.on("network_check.py", (0, json.dumps({
        "problems": [], "others": {},
        "failed": [[HEAD, "GCS", HEAD, 6379, "timed out"]]}), ""))
    ran = inv("start")
    assert ran.code == 1
    assert f"  {W3} → {HEAD} GCS {HEAD}:6379 timed out\n" in ran.out
    assert f"[{W3}] FAILED: 1 connection(s) to other nodes failed" in ran.out
    assert f"start failed on 1 of 3 nodes: {W3}\n" in ran.err
    for node in (head, w2, w3):
        assert node.sent("network_check.py") and not node.sent(START), node.log


def test_another_cluster_whose_ports_overlap_fails_the_preflight(fake, inv):
    head, w2, w3 = three(fake)
    w2.on("network_check.py", (0, json.dumps({
        "problems": [], "failed": [], "others": {"/opt/other": 6479}}), ""))
    ran = inv("start")
    assert ran.code == 1
    assert (f"[{W2}] FAILED: the cluster in /opt/other runs here: ports 6479-8265 would be "
            "shared by this cluster (port 6379) and the one at port 6479") in ran.out
    assert not any(node.sent(START) for node in (head, w2, w3))


def test_start_of_a_running_cluster_checks_no_network(fake, inv, running):
    ran = inv("start")
    assert ran.code == 0, ran.out + ran.err
    assert not any(node.sent("network_check.py") for node in running)


def test_rolling_restart_takes_one_node_at_a_time_and_the_head_last(fake, inv, running):
    ran = inv("restart-workers", "--rolling")
    assert ran.code == 0, ran.out + ran.err
    steps = [position(fake, HEAD, f"cluster_check.py drain {W2}"), position(fake, W2, STOP),
             position(fake, W2, START), position(fake, HEAD, f"cluster_check.py wait {W2}"),
             position(fake, HEAD, f"cluster_check.py drain {W3}"), position(fake, W3, STOP),
             position(fake, W3, START), position(fake, HEAD, f"cluster_check.py wait {W3}"),
             position(fake, HEAD, "node_state.py replace-idle-workers")]
    assert steps == sorted(steps)
    assert not fake.head.sent(STOP) and not fake.head.sent("kill-workers")
    assert all(node.alive for node in running)


def test_rolling_restart_stops_at_a_node_still_busy_after_draining(fake, inv, running):
    head, w2, w3 = running
    head.on(f"cluster_check.py drain {W2}",
            (1, json.dumps({"ok": False, "nodes": {W2: {"drained": "busy"}}}), ""))
    ran = inv("restart-workers", "--rolling", "--drain-timeout=5")
    assert ran.code == 1
    assert "tasks still running after 5s of draining (ray.drain_timeout)" in ran.out + ran.err
    assert "not restarted: the rolling restart stopped at" in ran.out + ran.err
    assert not w2.sent(STOP) and not w3.sent(STOP) and not head.sent("replace-idle-workers")
    assert not head.sent(f"cluster_check.py drain {W3}")


def test_rolling_restart_with_force_stops_a_node_still_busy(fake, inv, running):
    head, w2, w3 = running
    head.on(f"cluster_check.py drain {W2}",
            (1, json.dumps({"ok": False, "nodes": {W2: {"drained": "busy"}}}), ""))
    ran = inv("restart-workers", "--rolling", "--force")
    assert ran.code == 0, ran.out + ran.err
    assert w2.sent(STOP) and w3.sent(STOP) and head.sent("replace-idle-workers /opt/rt 600 --force")
