"""Benchmarks: ray-tasks against the floor Ray itself sets, a serial ssh loop and pdsh.

Run as root from the repository:  python bench/run.py [--runs 3] [--skip-ray]

It builds its own namespaced hosts (tests/netns_cluster.py), measures each tool in the same
run (medians of --runs), writes results/<time>.md and a plot, and removes its hosts.
Times are wall-clock seconds of whole commands, as an operator would see them.
"""

import argparse
import datetime
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
        inv(every, "install")
        inv(every, "start", f"--worker-dir={os.path.join(REPO, 'example_ray_code')}")
        inv(every, "stop")
        for count in counts:
            hosts = cluster.hosts[:count]
            env = environment(cluster, hosts, f"n{count}")
            head, workers = hosts[0], hosts[1:]
            starts, stops, again, floors, serial_starts, serial_stops = [], [], [], [], [], []
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
                for index, host in enumerate(hosts):
                    ssh(cluster, host, start_command(settings, host, head if index else None))
                serial_starts.append(time.monotonic() - started)
                started = time.monotonic()
                for host in list(reversed(hosts)):
                    ssh(cluster, host, f"{HOME}/venv/bin/ray stop")
                serial_stops.append(time.monotonic() - started)
            rows.append({"hosts": count, "inv start": median(starts),
                         "floor (head + slowest join)": median(floors),
                         "serial ssh start": median(serial_starts),
                         "start / floor": median(starts) / median(floors),
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


def markdown(title, rows):
    headers = list(rows[0])
    lines = [f"### {title}", "", "| " + " | ".join(headers) + " |",
             "|" + "---|" * len(headers)]
    for row in rows:
        cells = [f"{value:.2f}" if isinstance(value, float) else str(value)
                 if value is not None else "-" for value in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(path, fan_rows, life_rows):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for rows, axis, title in ((life_rows, axes[0], "cluster start and stop"),
                              (fan_rows, axes[1], "exec true (fan-out)")):
        if not rows:
            continue
        for key in rows[0]:
            if key == "hosts" or "/" in key or "MiB" in key or "2nd" in key:
                continue
            points = [(row["hosts"], row[key]) for row in rows if row[key] is not None]
            if points:
                axis.plot(*zip(*points), marker="o", label=key)
        axis.set_xlabel("hosts")
        axis.set_ylabel("seconds")
        axis.set_title(title)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-ray", action="store_true", help="fan-out only")
    parser.add_argument("--fanout", default="8,32,64")
    parser.add_argument("--nodes", default="1,2,4,8")
    parser.add_argument("--installs", default="1,3", help="host counts for the install run")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark builds namespaced hosts")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    results = os.path.join(HERE, "results")
    os.makedirs(results, exist_ok=True)
    fan_rows = fanout([int(n) for n in args.fanout.split(",")], args.runs)
    life_rows, extra = ([], {}) if args.skip_ray else lifecycle(
        [int(n) for n in args.nodes.split(",")], args.runs)
    install_rows = [] if args.skip_ray else installs(
        [int(n) for n in args.installs.split(",")], args.runs)
    machine = (f"{platform.node()}: {os.cpu_count()} cores, "
               f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
               f"{platform.platform()}, Python {platform.python_version()}")
    text = [f"## Benchmarks ({stamp}, median of {args.runs} runs)", "", f"Machine: {machine}", ""]
    if life_rows:
        text.append(markdown("Cluster start and stop (seconds)", life_rows))
    if extra:
        text.append("\n".join(f"- {name}: {seconds:.1f} s" for name, seconds in extra.items())
                    + "\n")
    if install_rows:
        text.append(markdown("Install with the wheelhouse (seconds, MiB)", install_rows))
    text.append(markdown("Fan-out: `exec true` (seconds; controller peak RSS)", fan_rows))
    report = os.path.join(results, f"{stamp}.md")
    with open(report, "w") as handle:
        handle.write("\n".join(text))
    plotted = plot(os.path.join(results, f"{stamp}.png"), fan_rows, life_rows)
    print("\n".join(text))
    print(f"written {report}" + (" and the plot" if plotted else " (no matplotlib: no plot)"))
    print(f"benchmark process peak RSS: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
          f"command: {' '.join(shlex.quote(a) for a in sys.argv)}")


if __name__ == "__main__":
    main()
