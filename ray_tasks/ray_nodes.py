"""Ray on the nodes: start the head, join the others, wait for them, stop, replace workers."""

import posixpath
import secrets

from . import ownership, ray_commands, report, shell
from .hosts import StepError, json_answer

HEAD_START_TIMEOUT = 120


def head_address(host, port):
    """``ip:port`` of the head's GCS, as every node and driver reaches it."""
    ip = f"[{host.ip}]" if ":" in host.ip else host.ip
    return f"{ip}:{port}"


def write_cluster_files(host, record, token, local):
    """The Ray token and cluster.json (``record``, a ClusterRecord) in ray-tasks' directory,
    and setup-env.sh
    (for drivers) beside it, its sha256 recorded before it is put in place."""
    home = host.home
    host.put(token.encode(), ray_commands.token_path(home), mode=0o600)
    host.put(record.to_json().encode(), ray_commands.cluster_file(home))
    ownership.write_setup_env(host, ray_commands.setup_env(home, record.head, local).encode())


def ray_log_tail(host):
    """The last lines of the node's Ray log (where a failed start says why)."""
    return host.run(ray_commands.tail_logs(host.home), "read the Ray logs", check=False).stdout


def _failed_start(host, what, error):
    """A StepError for a failed ``ray start``, with the tail of the node's Ray log."""
    logs = ray_log_tail(host)
    host.run_node_script("stop", "2", what="clean up after the failed start", check=False)
    return StepError(f"{what}: {error.message}", error.output + logs)


def resources(host, settings):
    """The ``ray start`` resource arguments of ``host``: its nodes.txt settings laid over
    ``settings`` (the node's values win)."""
    return ray_commands.resource_args(host.node.settings.over(settings))


def start_head(host, settings, local):
    if host.state.gcs:
        return "head already running"
    if host.state.raylet:
        raise StepError("this node runs Ray as a worker of another head: inv stop first")
    command = ray_commands.ray_start(settings, host.home, host.ip, resources(host, settings),
                                     local=local, timeout=HEAD_START_TIMEOUT)
    try:
        host.run(command, "start the head")
    except StepError as error:
        raise _failed_start(host, "head did not start", error) from None
    host.state.gcs = host.state.raylet = True
    return "head started"


def join_cluster(host, settings, address):
    command = ray_commands.ray_start(settings, host.home, host.ip, resources(host, settings),
                                     head_address=address, timeout=settings.join_timeout)
    try:
        host.run(command, f"join the head at {address}")
    except StepError as error:
        raise _failed_start(host, "did not join", error) from None
    host.state.raylet = True
    return f"joined {address}"


def stop(host):
    result = host.run_node_script("stop", what="stop Ray")
    if host.state:  # stop does not probe
        host.state.gcs = host.state.raylet = False
    return result.stdout.strip()


def replace_workers(host, force):
    args = ["--force"] if force else []
    result = host.run_node_script("kill-workers", *args, what="replace the worker processes",
                                  check=False)
    if result.exited == 3:
        raise StepError(f"tasks are running ({result.stdout.strip()}): wait for them, or "
                        "use --force to kill them (Ray retries them on fresh workers)")
    if result.exited != 0:
        raise StepError.from_result("could not replace the worker processes", result)
    return result.stdout.strip()


def run_on_head(head, script, *args, timeout=None):
    """Run a node script on the head as a driver (its setup-env.sh sourced, the venv's
    Python); returns the JSON object it printed last."""
    home = head.home
    command = (f". {shell.quote(ray_commands.setup_env_path(home))} && "
               + shell.join(posixpath.join(ray_commands.venv_link(home), "bin", "python"),
                            ray_commands.state_path(home, script), *args))
    result = head.run(command, f"run {script} on the head", timeout=timeout, check=False)
    return json_answer(result, f"{script} on the head failed (exit {result.exited})")


def check_cluster(head, action, hosts, *args, timeout):
    """Run cluster_check.py's ``action`` (wait, test) on the head for ``hosts``; returns
    the cluster view, {ip: what the check saw of the node}, for those hosts and every alive
    node."""
    ips = ",".join(host.ip for host in hosts)
    return run_on_head(head, "cluster_check.py", action, ips, *args, timeout=timeout)["nodes"]


def cluster_view(head, hosts, timeout, cancel_file=None):
    """Wait (asking the GCS, from the head) until every host is an alive node, the timeout,
    or ``cancel_file`` appears; returns the cluster view, {ip: {"alive", "resources"}}."""
    args = [cancel_file] if cancel_file else []
    return check_cluster(head, "wait", hosts, str(timeout), *args, timeout=timeout + 60)


def cancel_file(head):
    """A fresh path whose creation tells a waiting cluster_view to give up."""
    return ray_commands.state_path(head.home, f".wait-{secrets.token_hex(4)}.cancel")


def cancel_wait(head, path):
    head.run(shell.join("touch", path), "stop waiting for the cluster", check=False)


def fail_not_alive(runner, hosts, view, timeout):
    """Fail each of ``hosts`` that is not alive in ``view``, with the tail of its Ray log."""
    for host in hosts:
        if not view.get(host.ip, {}).get("alive"):
            runner.fail(host, f"not alive in the cluster after {timeout}s (join_timeout)",
                        ray_log_tail(host))


def wait_alive(runner, head, hosts, timeout):
    """Wait until every host is an alive node; fail the others with their Ray log. Returns
    the per-IP view of the cluster (resources)."""
    if not hosts:
        return {}
    try:
        with report.waiting(f"waiting for {len(hosts)} nodes to be alive"):
            view = cluster_view(head, hosts, timeout)
    except StepError as error:
        runner.fail(head, error.message, error.output)
        return {}
    fail_not_alive(runner, hosts, view, timeout)
    return view
