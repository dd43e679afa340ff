"""restart-workers --rolling on three namespaced hosts: a driver on the head keeps a stream
of short tasks going on the two worker nodes (none retried by Ray: max_retries=0; the head
has cpus=0, as README advises for a roll without retries) while the new worker code is
rolled node by node; no task fails, and every node runs the new code afterwards."""

import json
import os
import shlex
import subprocess
import textwrap

import pytest

from conftest import namespaced_cluster, read_until, run_inv, user_env
from host_state import run_driver, setup_env

TAG = (os.getpid() + 83) % 10000
STOP_FILE = "/root/stream.stop"

# Keeps more tasks in flight than the cluster has CPUs until STOP_FILE appears, then says
# what each host ran: the worker code's VALUE seen there, and every failure.
STREAM = textwrap.dedent("""
    import json, os, socket, sys, time, ray
    ray.init(logging_level="ERROR", log_to_driver=False)

    @ray.remote(num_cpus=1, max_retries=0)
    def step():
        import probe_mod
        time.sleep(0.05)
        return socket.gethostname(), probe_mod.VALUE

    in_flight, done, failed, values = [], 0, [], {}
    while in_flight or not os.path.exists(sys.argv[1]):
        while len(in_flight) < 10 and not os.path.exists(sys.argv[1]):
            in_flight.append(step.remote())
        ready, in_flight = ray.wait(in_flight, num_returns=1)
        try:
            host, value = ray.get(ready[0])
            values.setdefault(host, set()).add(value)
            done += 1
            if done == 20:
                print("streaming", flush=True)
        except Exception as error:
            failed.append(f"{type(error).__name__}: {str(error).splitlines()[0]}")
    print(json.dumps({"done": done, "failed": failed,
                      "values": {host: sorted(seen) for host, seen in values.items()}}))
""")


@pytest.fixture(scope="module")
def rolling_cluster():
    with namespaced_cluster(3, tag=TAG) as cluster:
        head, *others = cluster.hosts
        env = user_env(cluster, [f"{head.ip}  cpus=0", *(host.ip for host in others)])
        worker_dir = os.path.join(cluster.base, "worker")
        os.makedirs(worker_dir)
        set_value(worker_dir, "v1")
        try:
            yield cluster, env, worker_dir
        finally:
            run_inv("stop", env=env)


def set_value(worker_dir, value):
    with open(os.path.join(worker_dir, "probe_mod.py"), "w") as handle:
        handle.write(f"VALUE = {value!r}\n")


def start_stream(cluster):
    """The streaming driver on the head, started as an operator would over SSH."""
    head = cluster.hosts[0]
    command = f". {setup_env()} && python -c {shlex.quote(STREAM)} {STOP_FILE}"
    with open(os.path.join(cluster.base, "stream.err"), "w") as errors:
        stream = subprocess.Popen(cluster.ssh_args(head, command), stdout=subprocess.PIPE,
                                  stderr=errors, text=True, stdin=subprocess.DEVNULL)
    read_until(stream, "streaming")
    return stream


def end_stream(cluster, stream):
    """Ask the driver to finish its tasks; returns what it reported."""
    cluster.ssh(cluster.hosts[0], f"touch {STOP_FILE}")
    output, _ = stream.communicate(timeout=300)
    with open(os.path.join(cluster.base, "stream.err")) as errors:
        assert output.strip(), errors.read()
    return json.loads(output.strip().splitlines()[-1])


def test_rolling_restart_loads_new_code_with_no_failed_task(rolling_cluster):
    cluster, env, worker_dir = rolling_cluster
    started = run_inv("install", "start", f"--worker-dir={worker_dir}", env=env)
    assert started.returncode == 0, started.output
    stream = start_stream(cluster)
    try:
        set_value(worker_dir, "v2")
        refused = run_inv("restart-workers", f"--worker-dir={worker_dir}", env=env)
        assert refused.returncode == 1 and "tasks are running" in refused.output, \
            refused.output
        rolled = run_inv("restart-workers", "--rolling", f"--worker-dir={worker_dir}",
                         env=env)
        assert rolled.returncode == 0, rolled.output
        report = end_stream(cluster, stream)
    finally:
        stream.kill()
    assert report["failed"] == [], (report, rolled.output)
    head, *others = cluster.hosts
    assert report["values"] == {host.name: ["v1", "v2"] for host in others}, report
    seen = run_driver(cluster)
    assert {name: node["value"] for name, node in seen.items()} == \
        {host.name: "v2" for host in cluster.hosts}, seen
