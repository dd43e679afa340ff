"""Benchmarks: ray-tasks against the floor Ray itself sets, a serial ssh loop and pdsh.

Run as root from the repository:  python bench/run.py [--runs 3] [--nodes 1,2,4,8] ...
(an empty list, e.g. --fanout=, leaves that measurement out)

It builds its own namespaced hosts (tests/netns_cluster.py), measures each tool in the same
run (medians of --runs), writes results/<time>.md and a plot (bench/report.py), and removes
its hosts. Times are wall-clock seconds of whole commands, as an operator would see them.
"""

import argparse
import concurrent.futures
import datetime
import getpass
import glob
import hashlib
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, REPO)

import report  # noqa: E402
from as_user import WHEEL_CACHE, inv_command, run_inv, user_env  # noqa: E402
from host_state import HOME, ray_processes  # noqa: E402
from netns_cluster import NetnsCluster  # noqa: E402

from ray_tasks import config, ray_commands  # noqa: E402
from ray_tasks.node_settings import NodeSettings  # noqa: E402

VENV_BIN = ray_commands.venv_link(HOME) + "/bin"
SETTINGS = config.from_mapping({"object_store_memory": "80M", "num_workers": 1})


def finished(result, check):
    """(seconds, result) of a finished command; raises if it failed and ``check``."""
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(result.args)} failed:\n{result.output}")
    return result.seconds, result


def run(command, env=None, check=True):
    """Run a command to its end; return (seconds, CompletedProcess)."""
    return finished(run_inv(command=command, env=env, timeout=None), check)


def inv(env, *args, check=True):
    return run(inv_command(*args), env, check)


def ssh(cluster, host, command, check=True):
    return run(cluster.ssh_args(host, command), check=check)


def serial_ssh(cluster, commands):
    """Seconds to run each (host, command) of ``commands`` over ssh, one after another."""
    started = time.monotonic()
    for host, command in commands:
        ssh(cluster, host, command)
    return time.monotonic() - started


def install_all(env):
    """Install Ray on every host of ``env`` before measuring; four hosts at a time, as the
    self-test starts a whole Ray on each and every host here shares the same two cores."""
    inv(dict(env, INVOKE_RAY_PARALLEL="4"), "install")


def median(samples):
    return statistics.median(samples)


def medians(samples):
    """{key: median} over ``samples``, a list of {key: number} of one run each."""
    return {key: median([sample[key] for sample in samples]) for key in samples[0]}


def environment(cluster, hosts, name):
    """The user environment of ``hosts`` (nodes-NAME.txt), with the benchmark's sizes."""
    return dict(user_env(cluster, [host.ip for host in hosts], f"nodes-{name}.txt"),
                INVOKE_RAY_OBJECT_STORE_MEMORY="80M", INVOKE_RAY_NUM_WORKERS="1",
                INVOKE_RAY_PARALLEL="32")


def fanout(counts, runs):
    """`inv exec true`, `inv status` and `inv stop` on sshd-only hosts, each against pdsh
    running the same command over the same hosts (and a serial ssh loop for exec, up to
    SERIAL_UP_TO hosts)."""
    if not shutil.which("pdsh"):
        sys.exit("the fan-out compares with pdsh: apt-get install pdsh (or --fanout=)")
    with NetnsCluster(max(counts)) as cluster:
        return [fanout_row(cluster, cluster.hosts[:count], runs) for count in counts]


SERIAL_UP_TO = 64  # a serial ssh loop beyond that only grows linearly (~0.3 s a host)


def pdsh(cluster, hosts, command):
    """Seconds of `pdsh -R ssh -f 32 ... COMMAND` on ``hosts``, with the hosts' ssh options."""
    env = dict(os.environ, PDSH_SSH_ARGS_APPEND=" ".join(cluster.ssh_options()))
    return run(["pdsh", "-R", "ssh", "-f", "32", "-l", "root", "-w",
                ",".join(host.ip for host in hosts), command], env)[0]


def node_commands(hosts):
    """The commands `inv status` and `inv stop` send each node (as SshHost wraps them: in
    ``sh -c``): the probe, towards the head as status asks it, and the scoped stop."""
    settings = config.from_mapping({"python": "/usr/bin/python3"})
    home = settings.installation_directory
    probe = ray_commands.probe(settings.python, home, settings.port, hosts[0].ip)
    stop = ray_commands.node_state(settings.python, home, "stop")
    return {"status": "sh -c " + shlex.quote(probe), "stop": "sh -c " + shlex.quote(stop)}


def timed_inv(env, *args):
    """(seconds, controller peak RSS in MiB) of one `inv ARGS`."""
    seconds, result = run(["/usr/bin/time", "-f", "%M", *inv_command(*args)], env)
    return seconds, int(result.stderr.strip().splitlines()[-1]) / 1024


def fanout_run(cluster, hosts, env, commands):
    """One run of each task and of pdsh with the same command, one after the other:
    {what: seconds}, and the controller's peak RSS (MiB)."""
    sample, peaks = {}, []
    for task, command in (("exec", "true"), ("status", commands["status"]),
                          ("stop", commands["stop"])):
        sample[task], peak = timed_inv(env, *(["exec", "true"] if task == "exec" else [task]))
        peaks.append(peak)
        sample[f"pdsh {task}"] = pdsh(cluster, hosts, command)
    return sample, max(peaks)


def fanout_row(cluster, hosts, runs):
    env = environment(cluster, hosts, f"fanout{len(hosts)}")
    inv(env, "exec", "true")  # records host keys
    pdsh(cluster, hosts, "true")
    commands = node_commands(hosts)
    samples = [fanout_run(cluster, hosts, env, commands) for _ in range(runs)]
    seconds = medians([sample for sample, _ in samples])
    row = {"hosts": len(hosts)}
    for task in ("exec", "status", "stop"):
        row.update({f"inv {task}": seconds[task], f"pdsh {task}": seconds[f"pdsh {task}"],
                    f"{task} / pdsh": seconds[task] / seconds[f"pdsh {task}"]})
    row["serial ssh exec"] = median([
        serial_ssh(cluster, [(host, "true") for host in hosts]) for _ in range(runs)
    ]) if len(hosts) <= SERIAL_UP_TO else None
    row["controller MiB"] = max(peak for _, peak in samples)
    print(f"fan-out {len(hosts)}: {row}", flush=True)
    return row


def start_command(host, head=None):
    address = f"{head.ip}:{SETTINGS.port}" if head else None
    resources = ray_commands.resource_args(NodeSettings().over(SETTINGS))
    return ray_commands.ray_start(SETTINGS, HOME, host.ip, resources, head_address=address,
                                  timeout=120)


def lifecycle(counts, runs):
    """start/stop against Ray's floor and a serial ssh loop; restart-workers and update."""
    with NetnsCluster(max(counts)) as cluster:
        every = environment(cluster, cluster.hosts, "all")
        install_all(every)
        inv(every, "start", f"--worker-dir={os.path.join(REPO, 'example_ray_code')}")
        inv(every, "stop")
        rows = [lifecycle_row(cluster, cluster.hosts[:count], runs) for count in counts]
        return rows, restart_and_update(cluster, runs)


def lifecycle_row(cluster, hosts, runs):
    env = environment(cluster, hosts, f"n{len(hosts)}")
    seconds = medians([lifecycle_run(cluster, env, hosts) for _ in range(runs)])
    row = {"hosts": len(hosts), "inv start": seconds["start"],
           "floor (head + slowest join)": seconds["floor"],
           "serial ssh start": seconds["serial start"],
           "start / floor": seconds["start"] / seconds["floor"],
           "parallel ssh start": seconds["parallel start"],
           "start / parallel ssh": seconds["start"] / seconds["parallel start"],
           "2nd start (running)": seconds["again"], "inv stop": seconds["stop"],
           "serial ssh stop": seconds["serial stop"]}
    print(f"lifecycle {len(hosts)}: {row}", flush=True)
    return row


def lifecycle_run(cluster, env, hosts):
    """One run of every start and stop on ``hosts``: {what: seconds}."""
    head = hosts[0]
    seconds = {"start": inv(env, "start")[0], "again": inv(env, "start")[0],
               "stop": inv(env, "stop")[0]}
    seconds["floor"] = floor(cluster, env, head, hosts[1:])
    inv(env, "stop")
    seconds["parallel start"] = parallel_start(cluster, head, hosts[1:])
    inv(env, "stop")
    seconds["serial start"] = serial_ssh(cluster, [
        (host, start_command(host, head if index else None))
        for index, host in enumerate(hosts)])
    seconds["serial stop"] = serial_ssh(cluster, [(host, f"{VENV_BIN}/ray stop")
                                                  for host in reversed(hosts)])
    return seconds


def floor(cluster, env, head, workers):
    """What Ray itself costs: the head's `ray start` plus the slowest single join, each timed
    alone over ssh (each join is stopped before the next)."""
    head_seconds = ssh(cluster, head, start_command(head))[0]
    slowest = 0.0
    for worker in workers:
        slowest = max(slowest, ssh(cluster, worker, start_command(worker, head))[0])
        inv(env, "stop", f"--hosts={worker.ip}")
    return head_seconds + slowest


def parallel_start(cluster, head, workers):
    """Seconds of the head's `ray start` over ssh, then every join at once."""
    started = time.monotonic()
    ssh(cluster, head, start_command(head))
    joins = [subprocess.Popen(cluster.ssh_args(worker, start_command(worker, head)),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for worker in workers]
    if any(join.wait() for join in joins):
        raise RuntimeError("a join over parallel ssh failed")
    return time.monotonic() - started


def restart_and_update(cluster, runs):
    """`inv restart-workers`, and `inv update` to 2.59.0 (its wheels cached, venvs built)
    and back (venvs kept) against `inv stop` + `inv start`, on the first 3 hosts."""
    three = environment(cluster, cluster.hosts[:3], "three")
    inv(three, "start")
    extra = {"restart-workers (N=3)": median(
        [inv(three, "restart-workers")[0] for _ in range(runs)])}
    extra["stop + start, N=3"] = median(
        [inv(three, "stop")[0] + inv(three, "start")[0] for _ in range(runs)])
    extra["update to 2.59.0 (builds the venvs), N=3"] = inv(
        three, "update", "--version=2.59.0")[0]
    extra["update back to 2.60.0 (venvs kept), N=3"] = inv(
        three, "update", "--version=2.60.0")[0]
    extra["update (builds) / (stop + start)"] = \
        f"{extra['update to 2.59.0 (builds the venvs), N=3'] / extra['stop + start, N=3']:.2f}"
    inv(three, "stop")
    return extra


def tree_bytes(path):
    return sum(os.path.getsize(os.path.join(folder, name))
               for folder, _, names in os.walk(path) for name in names)


def interface_bytes(name, direction):
    """Bytes ``direction`` ("rx" or "tx") so far on a network interface of this machine."""
    with open(f"/sys/class/net/{name}/statistics/{direction}_bytes") as handle:
        return int(handle.read())


def received(link):
    """Bytes received so far over ``link`` (0 without one)."""
    return interface_bytes(link, "rx") if link else 0


def uplink():
    """The interface of this machine's default route (where the package index is reached)."""
    route = subprocess.run(["ip", "route", "show", "default"], capture_output=True,
                           text=True).stdout.split()
    return route[route.index("dev") + 1] if "dev" in route else None


def installs(counts, runs):
    """`inv install` with the wheelhouse on fresh hosts: what is fetched once, what is pushed
    to each host, the time, and a second install (nothing to do)."""
    with NetnsCluster(max(counts)) as cluster:
        link = uplink()
        return [install_row(cluster, cluster.hosts[:count], link, runs) for count in counts]


def install_row(cluster, hosts, link, runs):
    env = environment(cluster, hosts, f"install{len(hosts)}")
    measured = medians([install_run(cluster, env, hosts, link,
                                    f"wheels-{len(hosts)}-{attempt}") for attempt in range(runs)])
    row = {"hosts": len(hosts), "fetched once MiB": measured["fetched"] / 2**20,
           f"network in ({link}) MiB": measured["network"] / 2**20,
           "to the hosts MiB": measured["pushed"] / 2**20,
           "inv install": measured["first"], "2nd install": measured["second"],
           "install, wheels cached": measured["cached"], "selftest alone": measured["selftest"],
           "own work": measured["cached"] - measured["selftest"],
           "floor (scp + uv, 1 host)": measured["floor"],
           "own work / floor": (measured["cached"] - measured["selftest"]) / measured["floor"],
           "floor, every host at once": measured["floor at once"],
           "own work / that": (measured["cached"] - measured["selftest"])
           / measured["floor at once"]}
    print(f"install {len(hosts)}: {row}", flush=True)
    return row


def install_run(cluster, env, hosts, link, cache_name):
    """One install on fresh ``hosts`` with an empty wheel cache, and a second one; then,
    the wheels cached, one on fresh hosts again and `inv selftest` alone (install's own work
    is the difference), and the floor on the first host."""
    cache = os.path.join(cluster.base, cache_name)
    env = dict(env, INVOKE_RAY_WHEEL_CACHE=cache)
    wipe(cluster, hosts)
    network, pushed = received(link), interface_bytes(cluster.bridge, "tx")
    settle()
    sample = {"first": inv(env, "install")[0]}
    sample["network"] = received(link) - network
    sample["pushed"] = interface_bytes(cluster.bridge, "tx") - pushed
    sample["fetched"] = tree_bytes(cache)
    sample["second"] = inv(env, "install")[0]
    wipe(cluster, hosts)
    settle()
    sample["cached"] = inv(env, "install")[0]
    settle()
    sample["selftest"] = inv(env, "selftest")[0]
    sample["floor"] = install_floor(cluster, hosts[:1], cache)
    sample["floor at once"] = install_floor(cluster, hosts, cache)
    shutil.rmtree(cache)
    return sample


def settle():
    """Before each timed install, self-test or floor: flush the disk's pending writes and
    drop the page cache. The hosts share this machine's kernel: without this, the writes a
    wipe or an earlier step left, and the reclaim of their pages (kernel time that grew from
    40 % to 78 % over three identical venv builds in a row here, 3.2 s to 6.0 s), land on
    whichever command runs next."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as handle:
        handle.write("3\n")


def wipe(cluster, hosts):
    """Make ``hosts`` fresh: nothing of ray-tasks or uv on them."""
    for host in hosts:
        ssh(cluster, host, f"rm -rf {HOME} /root/.cache/uv")


def install_floor(cluster, hosts, cache):
    """Installing Ray on ``hosts`` by hand, as fast as it goes, on all of them at once: the
    cached wheels and this machine's uv binary over plain scp, then `uv venv` and `uv pip
    install --no-index --compile-bytecode` into a fresh venv (a fresh uv cache); the seconds
    until the last host is done."""
    folder = "/root/floor"
    wheels = glob.glob(os.path.join(cache, "ray*", "*.whl"))
    uv = os.path.join(os.path.dirname(sys.executable), "uv")
    requirement = f"ray[default]=={config.DEFAULTS['version']}"
    for host in hosts:
        ssh(cluster, host, f"rm -rf {folder} && mkdir -p {folder}/wheels")

    def by_hand(host):
        run(["scp", "-q", *cluster.ssh_options(), *wheels, uv,
             f"root@{host.ip}:{folder}/wheels/"])
        ssh(cluster, host, f"cd {folder} && export UV_CACHE_DIR={folder}/cache && wheels/uv "
                           "venv -q --python /usr/bin/python3 venv && wheels/uv pip install -q "
                           "--python venv/bin/python --no-index --find-links wheels "
                           f"--compile-bytecode {shlex.quote(requirement)}")

    settle()
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(hosts)) as pool:
        list(pool.map(by_hand, hosts))
    seconds = time.monotonic() - started
    for host in hosts:
        ssh(cluster, host, f"rm -rf {folder}")
    return seconds


RAY_UP_VERSION = "2.60.0"


def launcher(cluster):
    """A venv on this machine holding Ray's CLI (for `ray up`), offline when the wheels are
    cached; returns the environment that runs it with its state kept under the cluster."""
    venv = os.path.join(cluster.base, "launcher")
    run([sys.executable, "-m", "venv", venv])
    cached = [os.path.join(WHEEL_CACHE, name) for name in sorted(os.listdir(WHEEL_CACHE))
              if name.startswith(f"ray[default]=={RAY_UP_VERSION}-")] \
        if os.path.isdir(WHEEL_CACHE) else []
    source = ["--no-index", "--find-links", cached[0]] if cached else []
    run([os.path.join(venv, "bin", "pip"), "install", "-q", *source,
         f"ray[default]=={RAY_UP_VERSION}"])
    home = os.path.join(cluster.base, "launcher-home")
    os.makedirs(os.path.join(home, "tmp"), exist_ok=True)
    return dict(os.environ, HOME=home, TMPDIR=os.path.join(home, "tmp"),
                PATH=os.path.join(venv, "bin") + os.pathsep + os.environ["PATH"],
                RAY_UP_enable_autoscaler_v2="0")


def launcher_name(cluster, hosts):
    return f"bench{cluster.tag}-{len(hosts)}"


def launcher_sockets(name):
    """Where `ray up` keeps its ssh control sockets for cluster ``name`` on this machine."""
    user = hashlib.sha256(getpass.getuser().encode()).hexdigest()[:10]
    return f"/tmp/ray_ssh_{user}/{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def ray_up_config(cluster, hosts, path):
    """Ray's cluster launcher, local provider, on ``hosts`` with the settings of our runs."""
    ray = f"{VENV_BIN}/ray"
    sizes = "--num-cpus=1 --object-store-memory=80000000"
    config = {
        "cluster_name": launcher_name(cluster, hosts),
        "provider": {"type": "local", "head_ip": hosts[0].ip,
                     "worker_ips": [host.ip for host in hosts[1:]]},
        "auth": {"ssh_user": "root", "ssh_private_key": cluster.key},
        "min_workers": len(hosts) - 1, "max_workers": len(hosts) - 1,
        # `ray down` runs a bare `ray stop` on the head: put Ray on its login PATH.
        "setup_commands": [f"grep -qs {VENV_BIN} ~/.bashrc || "
                           f"echo 'export PATH={VENV_BIN}:$PATH' >> ~/.bashrc"],
        "head_start_ray_commands": [
            f"{ray} stop",
            f"{ray} start --head --port=6379 --autoscaling-config=~/ray_bootstrap_config.yaml "
            f"--node-ip-address={hosts[0].ip} --dashboard-host=127.0.0.1 {sizes}"],
        "worker_start_ray_commands": [
            f"{ray} stop",
            f"{ray} start --address=$RAY_HEAD_IP:6379 "
            f"--node-ip-address=$(hostname -I | cut -d' ' -f1) {sizes}"],
    }
    with open(path, "w") as handle:
        json.dump(config, handle, indent=2)


def wait_alive(hosts, timeout=300):
    """The command, for the head, that waits until every one of ``hosts`` is an alive node
    of the cluster `ray up` started: ray-tasks' own cluster_check.py (`inv install` put it
    there) asking the GCS at the head's port 6379."""
    return shlex.join(["env", f"RAY_ADDRESS={hosts[0].ip}:6379", f"{VENV_BIN}/python",
                       ray_commands.state_path(HOME, "cluster_check.py"), "wait",
                       ",".join(host.ip for host in hosts), str(timeout)])


def ray_processes_left(cluster, hosts):
    """How many Ray processes run on each of ``hosts`` (seen inside the host)."""
    return [len(ray_processes(cluster, host)) for host in hosts]


def ray_up(counts, runs, linger_limit=30):
    """`ray up -y` until every host is alive in the cluster, and `ray down -y` with how long
    Ray processes linger on the hosts after it returns."""
    with NetnsCluster(max(counts)) as cluster:
        install_all(environment(cluster, cluster.hosts, "rayup"))
        env = launcher(cluster)
        return [ray_up_row(cluster, env, cluster.hosts[:count], runs, linger_limit)
                for count in counts]


def ray_up_row(cluster, env, hosts, runs, linger_limit):
    config = os.path.join(cluster.base, f"ray-up-{len(hosts)}.json")
    ray_up_config(cluster, hosts, config)
    try:
        seconds = medians([ray_up_run(cluster, env, hosts, config, linger_limit)
                           for _ in range(runs)])
    finally:
        shutil.rmtree(launcher_sockets(launcher_name(cluster, hosts)), ignore_errors=True)
    linger = seconds["linger"]
    row = {"hosts": len(hosts), "ray up (all alive)": seconds["up"], "ray down": seconds["down"],
           "processes linger after ray down": f"{linger:.1f}"
           if linger != float("inf") else f"> {linger_limit} s"}
    print(f"ray up {len(hosts)}: {row}", flush=True)
    return row


def ray_up_run(cluster, env, hosts, config, linger_limit):
    """One `ray up` until all alive and `ray down`, then Ray cleared off ``hosts``."""
    started = time.monotonic()
    run(["ray", "up", "-y", "--no-config-cache", config], env)
    ssh(cluster, hosts[0], wait_alive(hosts))
    sample = {"up": time.monotonic() - started}
    sample["down"] = run(["ray", "down", "-y", config], env)[0]
    sample["linger"] = linger(cluster, hosts, linger_limit)
    for host in hosts:
        ssh(cluster, host, f"{VENV_BIN}/ray stop --force; rm -f /tmp/ray/cluster-*.state",
            check=False)
    shutil.rmtree(os.path.join(env["TMPDIR"], "ray"), ignore_errors=True)
    return sample


def linger(cluster, hosts, limit):
    """Seconds until no Ray process is left on ``hosts`` (infinite if some still are after
    ``limit``)."""
    returned = time.monotonic()
    while any(ray_processes_left(cluster, hosts)) and time.monotonic() - returned < limit:
        time.sleep(0.5)
    left = sum(ray_processes_left(cluster, hosts))
    return time.monotonic() - returned if not left else float("inf")


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fanout", default="8,32,64,128,200",
                        help="host counts for exec, status and stop on sshd-only hosts")
    parser.add_argument("--nodes", default="1,2,4,8", help="host counts for start and stop")
    parser.add_argument("--installs", default="1,3", help="host counts for install")
    parser.add_argument("--rayup", default="2,4", help="host counts for ray up and ray down")
    return parser.parse_args()


def main():
    args = arguments()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark builds namespaced hosts")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    counts = {name: [int(n) for n in getattr(args, name).split(",") if n]
              for name in ("fanout", "nodes", "installs", "rayup")}
    fan_rows = fanout(counts["fanout"], args.runs) if counts["fanout"] else []
    life_rows, extra = lifecycle(counts["nodes"], args.runs) if counts["nodes"] else ([], {})
    install_rows = installs(counts["installs"], args.runs) if counts["installs"] else []
    up_rows = ray_up(counts["rayup"], args.runs) if counts["rayup"] else []
    report.write(os.path.join(HERE, "results"), stamp, args.runs,
                 report.Rows(life_rows, extra, up_rows, install_rows, fan_rows))


if __name__ == "__main__":
    main()
