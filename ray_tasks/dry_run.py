"""--dry-run: after the connections, the probe and the checks, say per node what the task
would do (the ``ray start`` line with its resources, the venv built or switched to, what the
code sync would ship) and end the task there, nothing changed on any node."""

from . import installing, ray_commands, ray_nodes, report, uv_on_nodes


def ray_start_line(host, settings, address=None, local=False):
    """The ``ray start ...`` a node would run (the head's when ``address`` is None)."""
    command = ray_commands.ray_start(settings, host.home, host.ip,
                                     ray_nodes.resources(host, settings), head_address=address,
                                     local=local)
    return "run: ray start " + command.split("/bin/ray start ", 1)[1]


def venv_plan(host, settings):
    """What install or update would do to the node's venv."""
    wanted = installing.wanted_venv(host, settings)
    if installing.up_to_date(host, settings):
        return [f"do nothing: up to date (ray {settings.version}, venv {wanted})"]
    lines = []
    if not host.facts.venv_support:
        lines.append(f"install {ray_commands.venv_package(host.facts.python)} as root")
    if settings.wheelhouse:
        lines.append(f"receive the wheels of {settings.requirement} and uv (from this machine, "
                     "or from a node that has them, on the relay port)")
    lines.append(f"build venv {ray_commands.state_path(host.home, 'venvs', wanted)} "
                 f"({settings.requirement}) with uv {uv_on_nodes.release()}, or pip where uv "
                 "does not come up")
    current = host.state.venv_name or "none"
    lines.append(f"switch {ray_commands.venv_link(host.home)} from {current} to {wanted}")
    return lines


def code_plan(host, bundle):
    """What syncing the worker code ``bundle`` would do on the node."""
    lines = []
    if host.state.worker_code == bundle.digest:
        lines.append(f"keep the worker code ({bundle.digest} already)")
    else:
        replaced = f", replacing {host.state.worker_code}" if host.state.worker_code else ""
        code = ray_commands.state_path(host.home, "code", bundle.digest)
        lines.append(f"unpack the worker code into {code} ({len(bundle.archive)} bytes"
                     f"{replaced}) and point {ray_commands.worker_code_link(host.home)} at it")
    if bundle.requirements and host.state.requirements != bundle.requirements_digest:
        lines.append("install the worker code's requirements.txt into "
                     + ray_commands.venv_link(host.home))
    return lines


def start_plan(cluster, bundle):
    """{host: lines} of what start would do on each selected node."""
    head, settings = cluster.head, cluster.settings
    address = ray_nodes.head_address(head, settings.port)
    plans = {}
    for host in cluster.selected_hosts():
        if host.state.raylet:
            plans[host] = ["do nothing: Ray runs here already"]
            continue
        plans[host] = code_plan(host, bundle) + [
            "write the token, cluster.json and setup-env.sh",
            ray_start_line(host, settings, None if host is head else address, cluster.local)]
    return plans


def stop_plan(host):
    """What stop would do on the node."""
    if not host.state.raylet:
        return ["do nothing: no Ray of this installation runs here"]
    role = "head" if host.state.gcs else "worker"
    return [f"stop Ray ({host.facts.processes} processes, running as {role})"]


def restart_plan(cluster, bundle, num_workers, rolling=False):
    """{host: lines} of what restart-workers would do on each selected node."""
    head = cluster.head
    if rolling:
        return rolling_plan(cluster, bundle)
    record = head.facts.cluster
    rejoin = num_workers and (not record or num_workers != record.num_workers)
    plans = {}
    for host in cluster.selected_hosts():
        if rejoin and host is not head:
            step = f"stop Ray and join again with --num-cpus={num_workers}"
        else:
            step = f"replace the {host.facts.workers} worker processes"
        plans[host] = code_plan(host, bundle) + [step]
    return plans


def rolling_plan(cluster, bundle):
    """{host: lines} of what restart-workers --rolling would do on each selected node."""
    head, timeout = cluster.head, cluster.settings.drain_timeout
    return {host: code_plan(host, bundle) + (
        [f"replace its {host.facts.workers} worker processes, each once idle, after the "
         "other nodes"] if host is head else
        [f"drain it (up to {timeout}s), stop Ray and join again, in nodes-file order"])
        for host in cluster.selected_hosts()}


def update_plan(cluster, hosts, running):
    """{host: lines} of what update would do on each node: build, then (when the cluster
    runs) stop, switch and start again with the recorded settings."""
    settings = cluster.settings
    restart = ["stop Ray, then start it again with the settings recorded in cluster.json "
               "once every node is switched"]
    return {host: venv_plan(host, settings) + (restart if host in running else [])
            for host in hosts}


def finish(cluster, task, plans, *arguments):
    """Say each node's plan (identical ones once, the nodes folded), then end ``task``."""
    for host, lines in plans.items():
        cluster.runner.note(host, "dry run: " + lines[-1])
    report.host_lines({host.node: "would " + "; then ".join(lines)
                       for host, lines in plans.items()})
    report.say(f"{task}: dry run, nothing was changed on any node")
    cluster.runner.finish(task, *arguments)
