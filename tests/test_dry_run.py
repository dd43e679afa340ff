"""--dry-run over the fake transport: every task that changes nodes connects and probes,
says per node what it would run, and sends nothing else."""

import json
import re

import test_orchestration
from test_orchestration import NEW, OLD, three
from ray_tasks import uv_on_nodes

# The fixtures, shared.
fake, inv, running = test_orchestration.fake, test_orchestration.inv, test_orchestration.running

# The probe, the route lookup and start's network check (its listeners close when it ends).
READ_ONLY = re.compile(r"node_state\.py (probe|route)|network_check\.py ")


def only_probed(fake):
    """Assert that nothing but READ_ONLY commands reached any node."""
    for node in fake.nodes.values():
        assert all(READ_ONLY.search(entry) for entry in node.log), node.log


def test_start_dry_run_says_each_ray_start_line_and_changes_nothing(fake, inv):
    head, w2, w3 = three(fake)
    ran = inv("start", "--dry-run", "--num-workers=3")
    assert ran.code == 0, ran.out + ran.err
    only_probed(fake)
    assert not any(node.raylet or node.worker_code or node.files for node in (head, w2, w3))
    lines = ran.out.splitlines()
    head_line, = [line for line in lines if line.startswith("[10.9.0.1] would ")]
    assert "unpack the worker code into /opt/rt/.ray-tasks/code/" in head_line
    assert "run: ray start --head --dashboard-host=127.0.0.1 --port=6379 " in head_line
    assert head_line.endswith("--max-worker-port=8178 --node-ip-address=10.9.0.1 --num-cpus=3 "
                              "--temp-dir=/opt/rt/.ray-tasks/tmp --disable-usage-stats")
    for address in ("10.9.0.2", "10.9.0.3"):
        line, = [line for line in lines if line.startswith(f"[{address}] would ")]
        assert "run: ray start --address=10.9.0.1:6379 --node-manager-port=6380 " in line
        assert f"--max-worker-port=8178 --node-ip-address={address} --num-cpus=3 " in line
    assert "start: dry run, nothing was changed on any node" in lines


def test_install_dry_run_names_the_venv_it_would_build(fake, inv):
    three(fake, ray=OLD)
    ran = inv("install", "--dry-run", f"--version={NEW}")
    assert ran.code == 0, ran.out + ran.err
    only_probed(fake)
    assert (f"[10.9.0.[1-3]] would build venv /opt/rt/.ray-tasks/venvs/ray-{NEW}-py3.11.7 "
            f"(ray[default]=={NEW}) with uv {uv_on_nodes.release()}, or pip where uv does not "
            f"come up; then switch /opt/rt/.ray-tasks/venv from "
            f"ray-{OLD}-py3.11.7 to ray-{NEW}-py3.11.7") in ran.out.splitlines()
    assert "selftest: dry run, runtest.py not run" in ran.out
    assert all(node.ray == OLD for node in fake.nodes.values())


def test_update_stop_and_restart_workers_dry_runs_leave_a_running_cluster(fake, inv, running):
    for args in (["update", f"--version={NEW}"], ["stop"], ["restart-workers"],
                 ["restart-workers", "--num-workers=5"], ["exec", "touch /tmp/x"]):
        ran = inv(*args, "--dry-run")
        assert ran.code == 0, ran.out + ran.err
        assert f"{args[0]}: dry run, nothing was changed on any node" in ran.out
        only_probed(fake)
    assert all(node.raylet and node.alive and node.ray == OLD for node in running)


def test_dry_run_plans_read_well(fake, inv, running):
    stop = inv("stop", "--dry-run")
    assert "[10.9.0.1] would stop Ray (4 processes, running as head)" in stop.out
    assert "[10.9.0.[2-3]] would stop Ray (4 processes, running as worker)" in stop.out
    update = inv("update", f"--version={NEW}", "--dry-run")
    assert "then stop Ray, then start it again with the settings recorded" in update.out
    rejoin = inv("restart-workers", "--num-workers=5", "--dry-run")
    assert re.search(r"^\[10\.9\.0\.\[2-3\]\] would keep the worker code \(\w+ already\); "
                     r"then stop Ray and join again with --num-cpus=5$", rejoin.out, re.M)
    assert "[10.9.0.1] would keep the worker code" in rejoin.out
    only_probed(fake)


def test_a_dry_run_json_summary_says_so(fake, inv):
    three(fake)
    ran = inv("start", "--dry-run", "--json")
    assert ran.code == 0, ran.err
    printed = json.loads(ran.out)
    assert printed["dry_run"] is True and printed["ok"]
    assert printed["hosts"][0]["message"].startswith("dry run: run: ray start --head")
