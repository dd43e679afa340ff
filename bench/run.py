"""Benchmarks: ray-tasks against the floor Ray itself sets, a serial ssh loop and pdsh.

Run as root from the repository:  python bench/run.py [--runs 3] [--nodes 1,2,4,8] ...
(an empty list, e.g. --fanout=, leaves that measurement out)

It builds its own namespaced hosts (tests/netns_cluster.py), measures each tool in the same
run (medians of --runs), writes results/<time>.md and a plot, and removes its hosts.
Times are wall-clock seconds of whole commands, as an operator would see them.
"""

import argparse
import datetime
import getpass
import hashlib
import json
import os
import platform
import resource
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

from netns_cluster import NetnsCluster  # noqa: E402

from ray_tasks import config, ray_commands  # noqa: E402

WHEELS = os.environ.get("RAY_TASKS_TEST_WHEELS", "/var/tmp/ray-tasks-test-wheels")
HOME = "/root/ray"
VENV_BIN = ray_commands.venv_link(HOME) + "/bin"


def run(command, env=None, check=True):
    """Run a command; return (seconds, CompletedProcess)."""
    started = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return seconds, result


def inv(env, *args, check=True):
    return run([sys.executable, "-m", "invoke", "--search-root", REPO, *args], env, check)


def ssh_command(cluster, host, command):
    return ["ssh", "-i", cluster.key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", f"UserKnownHostsFile={cluster.base}/bench_known_hosts", "-o", "LogLevel=ERROR",
            f"root@{host.ip}", command]


def ssh(cluster, host, command, check=True):
    return run(ssh_command(cluster, host, command), check=check)


def install_all(env):
    """Install Ray on every host of ``env`` before measuring; four hosts at a time, as the
    self-test starts a whole Ray on each and every host here shares the same two cores."""
    inv(dict(env, INVOKE_RAY_PARALLEL="4"), "install")


def median(samples):
    return statistics.median(samples)


def environment(cluster, hosts, name):
    nodes = os.path.join(cluster.base, f"nodes-{name}.txt")
    with open(nodes, "w") as handle:
        handle.write("".join(f"{host.ip}\n" for host in hosts))
    env = dict(os.environ)
    env.update({
        "INVOKE_RAY_NODES": nodes, "INVOKE_RAY_KEY_FILE": cluster.key,
        "INVOKE_RAY_USERNAME": "root", "INVOKE_RAY_PYTHON": "/usr/bin/python3",
        "INVOKE_RAY_KNOWN_HOSTS": cluster.known_hosts,
        "INVOKE_RAY_AUTH_TOKEN_FILE": os.path.join(cluster.base, "auth_token"),
        "INVOKE_RAY_WHEELHOUSE": "1", "INVOKE_RAY_WHEEL_CACHE": WHEELS,
        "INVOKE_RAY_OBJECT_STORE_MEMORY": "80M", "INVOKE_RAY_NUM_WORKERS": "1",
        "INVOKE_RAY_PARALLEL": "32",
    })
    return env


def fanout(counts, runs):
    """`inv exec true` against pdsh and a serial ssh loop, sshd-only hosts."""
    rows = []
    cluster = NetnsCluster(max(counts)).start()
    try:
        for count in counts:
            hosts = cluster.hosts[:count]
            env = environment(cluster, hosts, f"fanout{count}")
            inv(env, "exec", "true")  # records host keys
            ours, peaks = [], []
            for _ in range(runs):
                seconds, result = run(["/usr/bin/time", "-f", "%M", sys.executable, "-m",
                                       "invoke", "--search-root", REPO, "exec", "true"], env)
                ours.append(seconds)
                peaks.append(int(result.stderr.strip().splitlines()[-1]) / 1024)
            pdsh_env = dict(os.environ, PDSH_SSH_ARGS_APPEND=(
                f"-i {cluster.key} -o BatchMode=yes -o StrictHostKeyChecking=no "
                f"-o UserKnownHostsFile={cluster.base}/bench_known_hosts -o LogLevel=ERROR"))
            pdsh = [run(["pdsh", "-R", "ssh", "-f", "32", "-l", "root", "-w",
                         ",".join(h.ip for h in hosts), "true"], pdsh_env)[0]
                    for _ in range(runs)] if shutil.which("pdsh") else []
            serial = []
            for _ in range(runs):
                started = time.monotonic()
                for host in hosts:
                    ssh(cluster, host, "true")
                serial.append(time.monotonic() - started)
            rows.append({"hosts": count, "ray-tasks": median(ours),
                         "pdsh -f 32": median(pdsh) if pdsh else None,
                         "serial ssh": median(serial), "controller MiB": max(peaks)})
            print(f"fan-out {count}: {rows[-1]}", flush=True)
    finally:
        cluster.close()
    return rows


def start_command(settings, host, head=None):
    address = f"{head.ip}:{settings.port}" if head else None
    return ray_commands.ray_start(settings, HOME, host.ip, settings.num_workers,
                                  head_address=address, timeout=120)


def lifecycle(counts, runs):
    """start/stop against Ray's floor and a serial ssh loop; restart-workers and update."""
    rows, extra = [], {}
    cluster = NetnsCluster(max(counts)).start()
    settings = config.from_mapping({"object_store_memory": "80M", "num_workers": 1})
    try:
        every = environment(cluster, cluster.hosts, "all")
        install_all(every)
        inv(every, "start", f"--worker-dir={os.path.join(REPO, 'example_ray_code')}")
        inv(every, "stop")
        for count in counts:
            hosts = cluster.hosts[:count]
            env = environment(cluster, hosts, f"n{count}")
            head, workers = hosts[0], hosts[1:]
            starts, stops, again, floors, serial_starts, serial_stops = [], [], [], [], [], []
            parallel_starts = []
            for _ in range(runs):
                starts.append(inv(env, "start")[0])
                again.append(inv(env, "start")[0])
                stops.append(inv(env, "stop")[0])

                head_seconds = ssh(cluster, head, start_command(settings, head))[0]
                slowest = 0.0
                for worker in workers:
                    slowest = max(slowest, ssh(cluster, worker,
                                               start_command(settings, worker, head))[0])
                    inv(env, "stop", f"--hosts={worker.ip}")
                floors.append(head_seconds + slowest)
                inv(env, "stop")

                started = time.monotonic()
                ssh(cluster, head, start_command(settings, head))
                joins = [subprocess.Popen(ssh_command(cluster, worker,
                                                      start_command(settings, worker, head)),
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL) for worker in workers]
                if any(join.wait() for join in joins):
                    raise RuntimeError("a join over parallel ssh failed")
                parallel_starts.append(time.monotonic() - started)
                inv(env, "stop")

                started = time.monotonic()
                for index, host in enumerate(hosts):
                    ssh(cluster, host, start_command(settings, host, head if index else None))
                serial_starts.append(time.monotonic() - started)
                started = time.monotonic()
                for host in list(reversed(hosts)):
                    ssh(cluster, host, f"{VENV_BIN}/ray stop")
                serial_stops.append(time.monotonic() - started)
            rows.append({"hosts": count, "inv start": median(starts),
                         "floor (head + slowest join)": median(floors),
                         "serial ssh start": median(serial_starts),
                         "start / floor": median(starts) / median(floors),
                         "parallel ssh start": median(parallel_starts),
                         "start / parallel ssh": median(starts) / median(parallel_starts),
                         "2nd start (running)": median(again), "inv stop": median(stops),
                         "serial ssh stop": median(serial_stops)})
            print(f"lifecycle {count}: {rows[-1]}", flush=True)
        three = environment(cluster, cluster.hosts[:3], "three")
        inv(three, "start")
        extra["restart-workers (N=3)"] = median(
            [inv(three, "restart-workers")[0] for _ in range(runs)])
        extra["update to 2.59.0 (builds the venvs), N=3"] = inv(
            three, "update", "--version=2.59.0")[0]
        extra["update back to 2.60.0 (venvs kept), N=3"] = inv(
            three, "update", "--version=2.60.0")[0]
        inv(three, "stop")
    finally:
        cluster.close()
    return rows, extra


def tree_bytes(path):
    return sum(os.path.getsize(os.path.join(folder, name))
               for folder, _, names in os.walk(path) for name in names)


def interface_bytes(name, direction):
    """Bytes ``direction`` ("rx" or "tx") so far on a network interface of this machine."""
    with open(f"/sys/class/net/{name}/statistics/{direction}_bytes") as handle:
        return int(handle.read())


def uplink():
    """The interface of this machine's default route (where the package index is reached)."""
    route = subprocess.run(["ip", "route", "show", "default"], capture_output=True,
                           text=True).stdout.split()
    return route[route.index("dev") + 1] if "dev" in route else None


def installs(counts, runs):
    """`inv install` with the wheelhouse on fresh hosts: what is fetched once, what is pushed
    to each host, the time, and a second install (nothing to do)."""
    rows = []
    cluster = NetnsCluster(max(counts)).start()
    link = uplink()
    try:
        for count in counts:
            env = environment(cluster, cluster.hosts[:count], f"install{count}")
            fetched, network, pushed, firsts, seconds = [], [], [], [], []
            for attempt in range(runs):
                cache = os.path.join(cluster.base, f"wheels-{count}-{attempt}")
                env["INVOKE_RAY_WHEEL_CACHE"] = cache
                for host in cluster.hosts[:count]:
                    ssh(cluster, host, f"rm -rf {HOME}")
                before = (interface_bytes(link, "rx") if link else 0,
                          interface_bytes(cluster.bridge, "tx"))
                firsts.append(inv(env, "install")[0])
                network.append((interface_bytes(link, "rx") if link else 0) - before[0])
                pushed.append(interface_bytes(cluster.bridge, "tx") - before[1])
                fetched.append(tree_bytes(cache))
                seconds.append(inv(env, "install")[0])
                shutil.rmtree(cache)
            rows.append({"hosts": count, "fetched once MiB": median(fetched) / 2**20,
                         f"network in ({link}) MiB": median(network) / 2**20,
                         "to the hosts MiB": median(pushed) / 2**20,
                         "inv install": median(firsts), "2nd install": median(seconds)})
            print(f"install {count}: {rows[-1]}", flush=True)
    finally:
        cluster.close()
    return rows


RAY_UP_VERSION = "2.60.0"
RAY_PROCESSES = "[r]aylet|[g]cs_server|[r]ay::|[r]ay-tasks/venv"


def launcher(cluster):
    """A venv on this machine holding Ray's CLI (for `ray up`), offline when the wheels are
    cached; returns the environment that runs it with its state kept under the cluster."""
    venv = os.path.join(cluster.base, "launcher")
    run([sys.executable, "-m", "venv", venv])
    cached = [os.path.join(WHEELS, name) for name in sorted(os.listdir(WHEELS))
              if name.startswith(f"ray[default]=={RAY_UP_VERSION}-")] if os.path.isdir(WHEELS) \
        else []
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


WAIT_ALIVE = """
import socket, sys, time
from ray._raylet import GcsClient
address, count, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    try:
        socket.create_connection((address.split(":")[0], 6379), timeout=1).close()
        break
    except OSError:
        time.sleep(0.2)
client = GcsClient(address=address)
while time.monotonic() < deadline:
    nodes = client.get_all_node_info(timeout=10).values()
    if sum(node.state == node.ALIVE for node in nodes) >= count:
        sys.exit(0)
    time.sleep(0.2)
sys.exit(1)
"""


def ray_processes_left(cluster, hosts):
    """How many Ray processes run on each of ``hosts`` (seen inside the host)."""
    return [int(ssh(cluster, host, f"pgrep -c -f '{RAY_PROCESSES}'", check=False)[1].stdout
                or 0) for host in hosts]


def ray_up(counts, runs, linger_limit=30):
    """`ray up -y` until every host is alive in the cluster, and `ray down -y` with how long
    Ray processes linger on the hosts after it returns."""
    rows = []
    cluster = NetnsCluster(max(counts)).start()
    try:
        install_all(environment(cluster, cluster.hosts, "rayup"))
        env = launcher(cluster)
        for count in counts:
            hosts = cluster.hosts[:count]
            config = os.path.join(cluster.base, f"ray-up-{count}.json")
            ray_up_config(cluster, hosts, config)
            ups, downs, lingers = [], [], []
            for _ in range(runs):
                started = time.monotonic()
                run(["ray", "up", "-y", "--no-config-cache", config], env)
                run(ssh_command(cluster, hosts[0], shlex.join(
                    [f"{VENV_BIN}/python", "-c", WAIT_ALIVE, f"{hosts[0].ip}:6379",
                     str(count), "300"])))
                ups.append(time.monotonic() - started)
                down = run(["ray", "down", "-y", config], env)[0]
                downs.append(down)
                returned = time.monotonic()
                while any(ray_processes_left(cluster, hosts)) \
                        and time.monotonic() - returned < linger_limit:
                    time.sleep(0.5)
                left = sum(ray_processes_left(cluster, hosts))
                lingers.append(time.monotonic() - returned if not left else float("inf"))
                for host in hosts:
                    ssh(cluster, host, f"{VENV_BIN}/ray stop --force; "
                                       "rm -f /tmp/ray/cluster-*.state", check=False)
                shutil.rmtree(os.path.join(env["TMPDIR"], "ray"), ignore_errors=True)
            linger = median(lingers)
            rows.append({"hosts": count, "ray up (all alive)": median(ups),
                         "ray down": median(downs),
                         "processes linger after ray down": f"{linger:.1f}"
                         if linger != float("inf") else f"> {linger_limit} s"})
            print(f"ray up {count}: {rows[-1]}", flush=True)
    finally:
        for count in counts:
            shutil.rmtree(launcher_sockets(launcher_name(cluster, cluster.hosts[:count])),
                          ignore_errors=True)
        cluster.close()
    return rows


def markdown(title, rows):
    headers = list(rows[0])
    lines = [f"### {title}", "", "| " + " | ".join(headers) + " |",
             "|" + "---|" * len(headers)]
    for row in rows:
        cells = [f"{value:.2f}" if isinstance(value, float) else str(value)
                 if value is not None else "-" for value in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(path, fan_rows, life_rows, up_rows):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    panels = ((axes[0], "cluster start and stop", life_rows + up_rows),
              (axes[1], "exec true (fan-out)", fan_rows))
    for axis, title, rows in panels:
        keys = dict.fromkeys(key for row in rows for key in row
                             if key != "hosts" and "/" not in key and "MiB" not in key
                             and "2nd" not in key)
        for key in keys:
            points = [(row["hosts"], row[key]) for row in rows
                      if isinstance(row.get(key), float)]
            if points:
                axis.plot(*zip(*points), marker="o", label=key)
        axis.set_xlabel("hosts")
        axis.set_ylabel("seconds")
        axis.set_title(title)
        if axis.lines:
            axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fanout", default="8,32,64", help="host counts for exec true")
    parser.add_argument("--nodes", default="1,2,4,8", help="host counts for start and stop")
    parser.add_argument("--installs", default="1,3", help="host counts for install")
    parser.add_argument("--rayup", default="2,4", help="host counts for ray up and ray down")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark builds namespaced hosts")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    results = os.path.join(HERE, "results")
    os.makedirs(results, exist_ok=True)
    counts = {name: [int(n) for n in getattr(args, name).split(",") if n]
              for name in ("fanout", "nodes", "installs", "rayup")}
    fan_rows = fanout(counts["fanout"], args.runs) if counts["fanout"] else []
    life_rows, extra = lifecycle(counts["nodes"], args.runs) if counts["nodes"] else ([], {})
    install_rows = installs(counts["installs"], args.runs) if counts["installs"] else []
    up_rows = ray_up(counts["rayup"], args.runs) if counts["rayup"] else []
    starts = {row["hosts"]: row["inv start"] for row in life_rows}
    for row in up_rows:
        if row["hosts"] in starts:
            row["ray up / inv start"] = row["ray up (all alive)"] / starts[row["hosts"]]
    machine = (f"{platform.node()}: {os.cpu_count()} cores, "
               f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
               f"{platform.platform()}, Python {platform.python_version()}")
    text = [f"## Benchmarks ({stamp}, median of {args.runs} runs)", "", f"Machine: {machine}", ""]
    if life_rows:
        text.append(markdown("Cluster start and stop (seconds)", life_rows))
    if extra:
        text.append("\n".join(f"- {name}: {seconds:.1f} s" for name, seconds in extra.items())
                    + "\n")
    if up_rows:
        text.append(markdown("Ray's cluster launcher, local provider (seconds)", up_rows))
    if install_rows:
        text.append(markdown("Install with the wheelhouse (seconds, MiB)", install_rows))
    if fan_rows:
        text.append(markdown("Fan-out: `exec true` (seconds; controller peak RSS)", fan_rows))
    report = os.path.join(results, f"{stamp}.md")
    with open(report, "w") as handle:
        handle.write("\n".join(text))
    plotted = plot(os.path.join(results, f"{stamp}.png"), fan_rows, life_rows, up_rows)
    print("\n".join(text))
    print(f"written {report}" + (" and the plot" if plotted else " (no matplotlib: no plot)"))
    print(f"benchmark process peak RSS: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
          f"command: {' '.join(shlex.quote(a) for a in sys.argv)}")


if __name__ == "__main__":
    main()
