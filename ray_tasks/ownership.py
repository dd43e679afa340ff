"""What ray-tasks owns on a node, and the preflight that keeps it off everything else.

Everything ray-tasks keeps on a node lives in one directory it makes itself,
``<installation_directory>/.ray-tasks``, together with an owner file; the only name it
writes beside it is ``setup-env.sh``, whose sha256 it records each time. A ``.ray-tasks``
it did not make, or a ``setup-env.sh`` it did not write (or that was changed since), stops
the task on every node before anything is touched.

A setup-env.sh written by an earlier ray-tasks (which kept its files at the top level and
recorded nothing) is recognised by its first line and taken as ours until ray-tasks writes
its own record; the earlier layout's other files are left where they are.
"""

import hashlib

from . import ray_commands


def check(runner, hosts):
    """Fail each of ``hosts`` where ray-tasks would have to write over something not its own."""
    for host in hosts:
        if host.state.state_dir == "foreign":
            runner.fail(host, f"{ray_commands.state_path(host.home)} is there but ray-tasks did "
                        f"not make it (it has no {ray_commands.OWNER_FILE} file): move it away "
                        "or choose another ray.installation_directory")
        elif host.state.setup_env == "foreign":
            runner.fail(host, f"{ray_commands.setup_env_path(host.home)} is there but ray-tasks "
                        "did not write it (or it was changed since): move it away or choose "
                        "another ray.installation_directory")


def claim(host):
    """Make ray-tasks' own directory on the node, unless it is there already."""
    if host.state.state_dir != "ours":
        host.run(ray_commands.claim(host.home), f"create {ray_commands.state_path(host.home)}")
        host.state.state_dir, host.state.venvs, host.state.codes = "ours", [], []


def claim_after_preflight(cluster, hosts, task):
    """End the task if any host failed the preflight (nothing was touched yet), then make
    ray-tasks' directory on ``hosts`` where it is missing."""
    cluster.stop_here(task)
    cluster.runner.each(claim, hosts)


def write_setup_env(host, text):
    """Write setup-env.sh (bytes ``text``) on ``host``: first its sha256 into the record
    (beside the one of the setup-env.sh there now, which stays listed until replaced), then
    the file, written in ray-tasks' directory and moved into place in one rename."""
    home = host.home
    written = hashlib.sha256(text).hexdigest()
    present = host.state.setup_env_sha256
    kept = [present] if present and present != written and \
        host.state.setup_env in ("ours", "legacy") else []
    host.put("".join(f"{digest}\n" for digest in kept + [written]).encode(),
             ray_commands.state_path(home, ray_commands.SETUP_ENV_RECORD))
    host.put(text, ray_commands.state_path(home, ray_commands.SETUP_ENV + ".new"))
    host.run(ray_commands.place_setup_env(home), "put setup-env.sh in place")
    host.state.setup_env, host.state.setup_env_sha256 = "ours", written
