"""The wheelhouse passes from node to node: the orchestration over the fake transport (who is
pushed to, who fetches from whom, the fall-back to a direct push), the rounds at any N, and
the node-side relay for real on this machine (checksums, what it serves, ending it)."""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from fake_hosts import HOME
from ray_tasks import peer_wheels
from ray_tasks.node_scripts import source
from test_installers import downloads  # noqa: F401 (fixture)
from test_orchestration import NEW, fake, inv, three  # noqa: F401 (fixtures)

WHEELS = f"{HOME}/.ray-tasks/wheels/"
RAY_WHEEL = f"{WHEELS}ray-{NEW}-cp311-cp311-manylinux2014_x86_64.whl"


def test_only_the_head_is_pushed_to_and_the_others_fetch_from_a_peer(fake, inv, downloads):
    head, w2, w3 = three(fake, None)
    ran = inv("install", f"--version={NEW}", "--wheelhouse")
    assert ran.code == 0, ran.out + ran.err
    assert head.sent(f"put {RAY_WHEEL}")
    for node in (w2, w3):
        assert not node.sent("put " + WHEELS), "the controller pushed to a peer"
        [fetch] = node.sent("wheel_relay.py fetch")
        assert f"http://{head.address}:6387" in fetch
        assert RAY_WHEEL in node.files
        assert node.sent("wheel_relay.py serve")
    for node in (head, w2, w3):
        assert node.sent("wheel_relay.py stop"), "a relay was left running"
    assert f"[{w2.address[:-1]}[2-3]] got 0 MiB of wheels from a peer node (sha256 checked)" \
        in ran.out


def test_at_ten_nodes_each_fetches_from_a_node_that_already_had_them(fake, inv, downloads):
    nodes = [fake.add(f"10.9.0.{number}") for number in range(1, 11)]
    ran = inv("install", f"--version={NEW}", "--wheelhouse")
    assert ran.code == 0, ran.out + ran.err
    assert [node.address for node in nodes if node.sent("put " + WHEELS)] == ["10.9.0.1"]
    sources = {}
    for node in nodes[1:]:
        [fetch] = node.sent("wheel_relay.py fetch")
        sources[node.address] = re.search(r"http://([\d.]+):", fetch)[1]
        assert RAY_WHEEL in node.files
    served = list(sources.values())
    rounds = 3  # 1 node has them, then 3, 9, 10
    assert max(served.count(source) for source in served) <= peer_wheels.FANOUT * rounds
    assert len(set(served) - {"10.9.0.1"}) >= 2, "the others barely served"


def test_a_node_that_cannot_fetch_is_pushed_to_directly_and_says_why(fake, inv, downloads):
    head, w2, w3 = three(fake, None)
    w3.on("wheel_relay.py fetch", (1, "", f"could not fetch ray.whl from http://{head.address}"
                                          ":6387: timed out"))
    ran = inv("install", f"--version={NEW}", "--wheelhouse")
    assert ran.code == 0, ran.out + ran.err
    assert w3.sent(f"put {RAY_WHEEL}") and not w2.sent(f"put {RAY_WHEEL}")
    assert f"[{w3.address}] pushed 0 MiB of wheels directly: could not fetch them from " \
           f"{head.address}: could not fetch ray.whl from http://{head.address}:6387: timed " \
           "out" in ran.out
    assert w3.ray == NEW


def test_when_the_head_cannot_serve_every_node_is_pushed_to_directly(fake, inv, downloads):
    head, w2, w3 = three(fake, None)
    head.on("wheel_relay.py serve", (1, "", "cannot listen on 10.9.0.1:6387: Address in use"))
    w2.on("wheel_relay.py serve", (1, "", "cannot listen"))
    w3.on("wheel_relay.py serve", (1, "", "cannot listen"))
    ran = inv("install", f"--version={NEW}", "--wheelhouse")
    assert ran.code == 0, ran.out + ran.err
    for node in (head, w2, w3):
        assert node.sent(f"put {RAY_WHEEL}")
        assert not node.sent("wheel_relay.py fetch") and not node.sent("wheel_relay.py stop")
    assert "directly: no node could serve them (10.9.0.1: cannot listen on 10.9.0.1:6387: " \
           "Address in use)" in ran.out


@pytest.mark.parametrize("count", [2, 3, 32, 200])
def test_the_serving_nodes_triple_each_round_and_none_serves_more_than_two(count):
    have, lacking, rounds = ["seed"], [f"n{index}" for index in range(1, count)], 0
    while lacking:
        plan = peer_wheels.next_round(have, lacking)
        served = [plan[host] for host in plan]
        assert max(served.count(source) for source in set(served)) <= peer_wheels.FANOUT
        assert set(plan) == set(lacking[:len(plan)])
        lacking = lacking[len(plan):]
        have += list(plan)
        rounds += 1
    assert len(have) == count
    assert rounds <= 5, "200 nodes need at most 5 rounds of fan-out 2"


def test_the_manifest_is_each_wheel_s_size_and_sha256(tmp_path):
    (tmp_path / "a-1-py3-none-any.whl").write_bytes(b"wheel a")
    (tmp_path / "notes.txt").write_bytes(b"not a wheel")
    assert peer_wheels.manifest([str(tmp_path)]) == {
        "a-1-py3-none-any.whl": [7, hashlib.sha256(b"wheel a").hexdigest()]}


# The node side, for real: two wheel folders on this machine, a relay on the loopback.

def relay(action, wheels, *args, manifest=None):
    return subprocess.run([sys.executable, "-c", source("wheel_relay.py"), action, str(wheels),
                           *map(str, args)], input=json.dumps(manifest or {}),
                          capture_output=True, text=True, timeout=60)


def free_port():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


@pytest.fixture
def serving(tmp_path):
    """A relay on 127.0.0.1 serving two wheels; yields (its URL, the manifest, its PID)."""
    served = tmp_path / "served"
    served.mkdir()
    for name, data in (("a-1-py3-none-any.whl", b"A" * 3_000_000), ("b-2-py3-none-any.whl",
                                                                    b"B" * 10)):
        (served / name).write_bytes(data)
    (served / "secret.txt").write_text("not served")
    manifest = peer_wheels.manifest([str(served)])
    port = free_port()
    started = relay("serve", served, "127.0.0.1", port, 30, manifest=manifest)
    assert started.returncode == 0, started.stderr
    pid = json.loads(started.stdout)["pid"]
    yield f"http://127.0.0.1:{port}", manifest, pid, served
    with_pid_gone(pid, lambda: relay("stop", served, pid))


def running(pid):
    """Whether process ``pid`` runs (a zombie waiting for its parent does not)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def with_pid_gone(pid, stop):
    stop()
    deadline = time.monotonic() + 10
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if running(pid):
        os.kill(pid, signal.SIGKILL)
        pytest.fail(f"the relay {pid} did not end")


def test_a_node_fetches_every_wheel_and_keeps_only_checked_ones(serving, tmp_path):
    url, manifest, _, served = serving
    fetched = tmp_path / "fetched"
    ran = relay("fetch", fetched, url, manifest=manifest)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"bytes": 3_000_010}
    assert sorted(os.listdir(fetched)) == sorted(manifest)
    for name in manifest:
        assert (fetched / name).read_bytes() == (served / name).read_bytes()
    again = relay("fetch", fetched, url, manifest=manifest)
    assert json.loads(again.stdout) == {"bytes": 0}, "a wheel already there was fetched again"


def test_a_wheel_that_does_not_match_the_controller_s_is_not_kept(serving, tmp_path):
    url, manifest, _, _ = serving
    wrong = dict(manifest, **{"b-2-py3-none-any.whl": [10, "0" * 64]})
    fetched = tmp_path / "fetched"
    ran = relay("fetch", fetched, url, manifest=wrong)
    assert ran.returncode == 1
    assert "b-2-py3-none-any.whl from http://127.0.0.1:" in ran.stderr
    assert "does not match the controller's copy" in ran.stderr
    assert os.listdir(fetched) == ["a-1-py3-none-any.whl"], "no partial or wrong file stays"


def test_the_relay_serves_the_manifest_s_wheels_and_nothing_else(serving):
    url, _, _, _ = serving
    for path in ("/secret.txt", "/../served/secret.txt", "/%2e%2e/secret.txt", "/"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + path, timeout=10)
        assert refused.value.code == 404, path


def test_a_relay_that_cannot_listen_says_so(serving, tmp_path):
    url, manifest, _, served = serving
    port = url.rsplit(":", 1)[1]
    ran = relay("serve", served, "127.0.0.1", port, 30, manifest=manifest)
    assert ran.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in ran.stderr


def test_a_fetch_from_a_peer_that_does_not_answer_names_it(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    ran = relay("fetch", tmp_path, url, manifest={"a-1-py3-none-any.whl": [1, "0" * 64]})
    assert ran.returncode == 1
    assert f"could not fetch a-1-py3-none-any.whl from {url}: " in ran.stderr


def test_stop_ends_only_a_relay_of_that_folder(serving, tmp_path):
    _, _, pid, served = serving
    other = subprocess.Popen(["sleep", "60"])
    try:
        relay("stop", served, other.pid)
        relay("stop", tmp_path / "elsewhere", pid)
        time.sleep(0.5)
        assert other.poll() is None and running(pid)
    finally:
        other.kill()
        other.wait()


def test_an_idle_relay_ends_by_itself(tmp_path):
    port = free_port()
    started = relay("serve", tmp_path, "127.0.0.1", port, 1, manifest={})
    pid = json.loads(started.stdout)["pid"]
    with_pid_gone(pid, lambda: None)
