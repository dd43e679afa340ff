"""Output that reads at any N, over the fake transport (tests/fake_hosts.py): identical
output folded into host ranges, the one-line summary, the table of the failed hosts."""

import contextlib
import functools
import json
import os
import pathlib
import pty
import re
import subprocess
import sys

import jsonschema
import pytest

import test_orchestration
from conftest import REPO
from fake_hosts import FakeCluster, controller_env
from test_orchestration import three

# The fixtures, shared.
fake, inv, running = test_orchestration.fake, test_orchestration.inv, test_orchestration.running

MANY = [f"10.8.0.{number}" for number in range(1, 33)]


def many(fake, ray="2.60.0"):
    """32 fake nodes, 10.8.0.1 the head."""
    return [fake.add(address, ray) for address in MANY]


def test_exec_true_over_32_hosts_prints_one_group(fake, inv):
    many(fake)
    ran = inv("exec", "true")
    assert ran.code == 0, ran.out + ran.err
    assert ran.out.splitlines() == ["[10.8.0.[1-32]] (no output)",
                                    ran.out.splitlines()[-1]]
    assert re.fullmatch(r"exec: 32 nodes ok in \d+\.\d s", ran.out.splitlines()[-1])


def test_exec_prints_each_distinct_output_once_with_its_hosts(fake, inv):
    nodes = many(fake)
    for node in nodes:
        node.on("hostname", (0, f"name-{node.address}\n", ""))
        node.on("uname -r", (0, "6.1.0-18-amd64\n" if node.address != MANY[4]
                             else "6.12.0\n", ""))
    names = inv("exec", "hostname")
    assert names.code == 0, names.out + names.err
    assert [line for line in names.out.splitlines() if "| name-" in line] == [
        f"[{address}] | name-{address}" for address in MANY]
    kernels = inv("exec", "uname -r")
    assert kernels.out.splitlines()[:2] == ["[10.8.0.[1-4,6-32]] | 6.1.0-18-amd64",
                                            "[10.8.0.5] | 6.12.0"]


def test_exec_failures_are_named_and_their_output_grouped(fake, inv):
    nodes = many(fake)
    for node in nodes[1:3]:
        node.on("false", (1, "", "no luck\n"))
    ran = inv("exec", "false")
    assert ran.code == 1
    assert "[10.8.0.2] FAILED: exit 1" in ran.out and "[10.8.0.3] FAILED: exit 1" in ran.out
    assert "[10.8.0.[2-3]] | no luck" in ran.out
    assert "[10.8.0.[1,4-32]] (no output)" in ran.out
    table = ran.out.split("exec: summary\n")[1]
    assert [line.split()[0] for line in table.splitlines()[2:4]] == ["10.8.0.2", "10.8.0.3"]
    assert "exec: 2 of 32 nodes FAILED, 30 ok, in " in table


def test_start_over_32_hosts_says_each_step_once_and_ends_in_one_line(fake, inv):
    many(fake)
    ran = inv("start")
    assert ran.code == 0, ran.out + ran.err
    assert "[10.8.0.[2-32]] joined 10.8.0.1:6379" in ran.out.splitlines()
    assert "[10.8.0.1] head started" in ran.out.splitlines()
    assert re.search(r"^10\.8\.0\.\[1-32\]\s+10\.8\.0\.\[1-32\]\s+2\s+0\s+4\.0 GiB\s",
                     ran.out, re.M), "the nodes' identical resources are not one row"
    assert "summary" not in ran.out
    assert re.search(r"^start: 32 nodes ok in \d+\.\d s$", ran.out, re.M)
    assert len(ran.out.splitlines()) < 60, ran.out


def test_verbose_lists_every_host_in_the_summary(fake, inv):
    three(fake)
    ran = inv("start", "--verbose")
    assert ran.code == 0, ran.out + ran.err
    table = ran.out.split("start: summary\n")[1]
    assert [line.split()[:2] for line in table.splitlines()[2:5]] == [
        ["10.9.0.1", "ok"], ["10.9.0.2", "ok"], ["10.9.0.3", "ok"]]
    assert re.search(r"^start: 3 nodes ok in \d+\.\d s$", table, re.M)


@functools.cache
def readme_schema():
    """The JSON Schema of --json's document, as README.md documents it (the json block of
    its --json section)."""
    text = (pathlib.Path(REPO) / "README.md").read_text(encoding="utf-8")
    section = text.split("### `--json`", 1)[1]
    return json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])


def documents(ran):
    """The JSON documents on stdout, one a line (one per task run), each checked against
    README's schema."""
    printed = [json.loads(line) for line in ran.out.splitlines()]
    for each in printed:
        jsonschema.validate(each, readme_schema())
    return printed


def document(ran):
    """The one JSON document a task printed on stdout, checked against README's schema."""
    printed = documents(ran)
    assert len(printed) == 1, f"stdout holds more than one document: {ran.out}"
    return printed[0]


def test_every_task_prints_its_summary_as_json_and_nothing_else(fake, inv):
    three(fake)
    for args in (["install"], ["start"], ["test"], ["restart-workers"], ["selftest"],
                 ["exec", "true"], ["update", "--version=2.60.0"], ["stop"]):
        ran = inv(*args, "--json")
        assert ran.code == 0, ran.out + ran.err
        printed = documents(ran)
        hook = ["selftest"] if args == ["install"] else []  # install's post-task hook
        assert [each["task"] for each in printed] == [args[0], *hook]
        for each in printed:
            assert each["ok"] and each["failed"] == [] and not each["dry_run"]
            assert [entry["host"] for entry in each["hosts"]] == ["10.9.0.1", "10.9.0.2",
                                                                  "10.9.0.3"]


def test_a_json_summary_keeps_the_exit_status_and_names_the_failure(fake, inv):
    head, w2, w3 = three(fake)
    w3.on("bin/ray start", (1, "", "raylet died"))
    ran = inv("start", "--json")
    assert ran.code == 1
    printed = document(ran)
    assert not printed["ok"] and printed["failed"] == ["10.9.0.3"]
    failed, = [entry for entry in printed["hosts"] if not entry["ok"]]
    assert failed["host"] == "10.9.0.3" and failed["message"].startswith("did not join")
    assert printed["retry"].startswith("inv start ") and "--hosts=10.9.0.3" in printed["retry"]
    assert "start failed on 1 of 3 nodes: 10.9.0.3" in ran.err
    assert "[10.9.0.3] FAILED: did not join" in ran.err


def test_exec_json_holds_each_nodes_output(fake, inv):
    for node in three(fake):
        node.on("hostname", (0, f"name-{node.address}\n", ""))
    printed = document(inv("exec", "hostname", "--json"))
    assert printed["outputs"] == {address: f"name-{address}\n"
                                  for address in ("10.9.0.1", "10.9.0.2", "10.9.0.3")}


def test_status_json_describes_each_node_and_the_cluster_ray_sees(fake, inv, running):
    head, w2, w3 = running
    w3.alive = False  # its raylet runs, but the head's GCS lost it
    ran = inv("status", "--json")
    printed = document(ran)
    nodes = {entry["node"]: entry for entry in printed["nodes"]}
    assert nodes["10.9.0.1"] == {
        "node": "10.9.0.1", "address": "10.9.0.1", "reachable": True,
        "hostname": "fake-10.9.0.1", "python": "3.11.7", "ray": "2.59.0",
        "running_as": "head", "workers": 0, "alive": True, "cpus": 2.0, "gpus": 0,
        "memory": 4.0 * 2**30, "object_store_memory": 2.0**30, "resources": {}, "errors": []}
    assert nodes["10.9.0.2"]["running_as"] == "worker" and nodes["10.9.0.2"]["alive"]
    assert nodes["10.9.0.3"]["alive"] is False and nodes["10.9.0.3"]["cpus"] is None
    assert printed["cluster"]["address"] == "10.9.0.1:6379" and printed["cluster"]["running"]
    assert set(printed["cluster"]["nodes"]) == {"10.9.0.1", "10.9.0.2"}
    assert "resources (as Ray reports them" in ran.err


def test_status_json_of_a_stopped_cluster_and_an_unreachable_node(fake, inv):
    head, w2, w3 = three(fake)
    w2.on("node_state.py probe", (255, "", "ssh: connect to host 10.9.0.2: No route to host"))
    ran = inv("status", "--json")
    assert ran.code == 1
    printed = document(ran)
    nodes = {entry["node"]: entry for entry in printed["nodes"]}
    assert nodes["10.9.0.2"]["reachable"] is False and nodes["10.9.0.2"]["errors"]
    assert nodes["10.9.0.1"]["running_as"] == "stopped" and nodes["10.9.0.1"]["alive"] is None
    assert printed["cluster"] == {"address": None, "running": False, "nodes": {}}


def test_the_readme_schema_refuses_a_document_that_lacks_a_field_or_a_type():
    good = {"task": "stop", "ok": True, "seconds": 1.0, "failed": [], "retry": None,
            "log": None, "dry_run": False,
            "hosts": [{"host": "h", "ok": True, "message": "", "seconds": 0.5}]}
    jsonschema.validate(good, readme_schema())
    for broken in ({key: value for key, value in good.items() if key != "hosts"},
                   dict(good, ok="yes"), dict(good, hosts=[{"host": "h", "ok": True}]),
                   dict(good, nodes=[{"node": "h"}])):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, readme_schema())


ON_A_TERMINAL = """
import sys
import pytest
from fake_hosts import FakeCluster, forbid_traffic, run_inv, use_fakes

cluster = FakeCluster()
for address in sys.argv[1:]:
    cluster.add(address)
patch = pytest.MonkeyPatch()
use_fakes(patch, cluster)
forbid_traffic(patch)
sys.exit(run_inv("install", "--version=2.60.0"))
"""

# The same with the wheelhouse: the controller's download faked by a folder of 3 wheels of
# 1 MB (uv's and pip's folder among them), pushed to the head, fetched from it by the others.
WITH_WHEELHOUSE = ON_A_TERMINAL.replace("""sys.exit(run_inv("install", "--version=2.60.0"))""", """
import os, tempfile
from ray_tasks import wheelhouse

def download(settings, facts, requirement, name):
    folder = os.path.join(tempfile.mkdtemp(), name)
    os.makedirs(folder)
    wheels = ["uv-0-py3-none-any.whl", "pip-0-py3-none-any.whl"] if name.startswith("uv==") \
        else ["ray-2.60.0-cp311-cp311-manylinux2014_x86_64.whl"]
    for wheel in wheels:
        with open(os.path.join(folder, wheel), "wb") as handle:
            handle.write(bytes(10**6))
    return folder, False

patch.setattr(wheelhouse, "download", download)
sys.exit(run_inv("install", "--version=2.60.0", "--wheelhouse"))""")


def run_install(tmp_path, terminal, script=ON_A_TERMINAL):
    """``inv install`` (as ``script`` runs it) over three fake nodes in a child process whose
    stdout and stderr are a terminal (a pty) or pipes; returns its exit status and
    everything it printed."""
    cluster = FakeCluster()
    for address in MANY[:3]:
        cluster.add(address)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("INVOKE_") and key != "CI"}
    env.update(controller_env(tmp_path, cluster), TERM="xterm", HOME=str(tmp_path),
               PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, "tests")]))
    command = [sys.executable, "-c", script, *MANY[:3]]
    if not terminal:
        ran = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        return ran.returncode, ran.stdout + ran.stderr
    leader, follower = pty.openpty()
    child = subprocess.Popen(command, env=env, stdin=follower, stdout=follower,
                             stderr=follower)
    os.close(follower)
    printed = b""
    with contextlib.suppress(OSError):  # EIO once the child closed the terminal
        while chunk := os.read(leader, 65536):
            printed += chunk
    os.close(leader)
    return child.wait(timeout=60), printed.decode(errors="replace")


def test_a_terminal_shows_a_live_progress_line_and_a_pipe_plain_lines(tmp_path):
    status, shown = run_install(tmp_path, terminal=True)
    assert status == 0, shown
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)
    assert re.search(r"venvs built 0/3 \S+ 0:00:00", plain), shown
    assert "\x1b[?25h" in shown, "the cursor was left hidden"
    status, piped = run_install(tmp_path, terminal=False)
    assert status == 0, piped
    assert "venvs built" not in piped and "\x1b" not in piped, piped
    assert "[10.8.0.[1-3]] now on ray 2.60.0" in piped


def test_a_terminal_shows_the_bytes_and_rate_of_the_wheels_delivered(tmp_path):
    status, shown = run_install(tmp_path, terminal=True, script=WITH_WHEELHOUSE)
    assert status == 0, shown
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)
    assert re.search(r"wheels delivered 9\.0/9\.0 MB [^\n]*0:00:\d\d", plain), shown
    assert "[10.8.0.1] pushed 2 MiB of wheels" in plain
    assert "[10.8.0.[2-3]] got 2 MiB of wheels from a peer node (sha256 checked)" in plain
    status, piped = run_install(tmp_path, terminal=False, script=WITH_WHEELHOUSE)
    assert status == 0, piped
    assert "wheels delivered" not in piped and "\x1b" not in piped, piped
