"""The shell commands run on the nodes, built from settings as plain text (no I/O here).

Every path is absolute (the node's installation directory, as the probe reported it) and
every value is quoted. What a node holds, under its installation directory ``home``:

    venv -> venvs/ray-<version>-py<python>   Ray's virtualenv (switched atomically)
    worker_code -> code/<digest>             the synced worker directory
    setup-env.sh                              source it to drive this cluster
    auth_token                                the cluster's Ray token (mode 0600)
    cluster.json                              the settings the cluster was started with
    runtest.py, cluster_check.py, wheels/, tmp/ (Ray's logs and sockets)
"""

import posixpath

from . import shell
from .node_scripts import source

MARKER = "RAY_TASKS_HOME"
# Ray's socket paths (<temp dir>/session_<date>_<id>/sockets/plasma_store) must fit in 107 bytes.
MAX_HOME_LENGTH = 40


def venv_path(home, version, python_version):
    return posixpath.join(home, "venvs", f"ray-{version}-py{python_version}")


def venv_link(home):
    return posixpath.join(home, "venv")


def temp_dir(home):
    return posixpath.join(home, "tmp")


def wheels_dir(home):
    return posixpath.join(home, "wheels")


def create_venv(python, home, venv, requirement, offline):
    """Build a fresh venv holding ``requirement``, unless a complete one is there already
    (the previous release, kept for a fast switch back). Complete means .complete exists.
    The build holds a lock beside the venv: a build left running on the node by a lost
    connection or Ctrl-C finishes before a rerun looks again."""
    pip_source = ["--no-index", "--find-links", wheels_dir(home)] if offline else []
    complete = f"[ -f {shell.quote(posixpath.join(venv, '.complete'))} ]"
    build = " && ".join([
        shell.join("rm", "-rf", venv),
        shell.join(python, "-m", "venv", venv),
        shell.join(posixpath.join(venv, "bin", "python"), "-m", "pip", "install", "-q",
                   "--disable-pip-version-check", *pip_source, requirement),
        shell.join("touch", posixpath.join(venv, ".complete")),
    ])
    locked = shell.join("flock", venv + ".lock", "sh", "-c", f"{complete} || {{ {build}; }}")
    return (f"{complete} || {{ {shell.join('mkdir', '-p', posixpath.dirname(venv))} && "
            f"{locked}; }}")


def venv_package(python_version):
    """The Debian/Ubuntu package that gives this Python its venv support."""
    return "python{}.{}-venv".format(*python_version.split(".")[:2])


def install_os_package(package):
    """Install an OS package with apt-get (refreshing the package lists if it is unknown)."""
    install = shell.join("apt-get", "install", "-y", "-q", package)
    return ("command -v apt-get >/dev/null || { echo 'no apt-get on this node' >&2; exit 3; }; "
            f"export DEBIAN_FRONTEND=noninteractive; {install} || "
            f"{{ apt-get update -q && {install}; }}")


def as_root(command, user_is_root, password_on_stdin):
    """Run ``command`` as root: directly for root, else with sudo, which reads the password
    from stdin (never from the command line) or, without one, must not ask for it."""
    if user_is_root:
        return shell.join("sh", "-c", command)
    ask = ["-S", "-p", ""] if password_on_stdin else ["-n"]
    return shell.join("sudo", *ask, "--", "sh", "-c", command)


def switch_venv(home, venv):
    """Point ``home/venv`` at ``venv`` in one rename."""
    link = venv_link(home)
    return " && ".join([
        shell.join("ln", "-sfn", venv, link + ".new"),
        shell.join("mv", "-Tf", link + ".new", link),
    ])


def remove_other_venvs(home, keep):
    """Delete every venv under ``home/venvs`` but the ones named in ``keep``."""
    venvs = posixpath.join(home, "venvs")
    kept = " ".join(f"! -name {shell.quote(posixpath.basename(path))}" for path in keep)
    return (f"find {shell.quote(venvs)} -mindepth 1 -maxdepth 1 {kept} "
            "-exec rm -rf {} +")


def install_requirements(home, requirements, offline):
    """pip-install a requirements file of the worker code into the venv."""
    pip_source = ["--no-index", "--find-links", wheels_dir(home)] if offline else []
    return shell.join(posixpath.join(venv_link(home), "bin", "python"), "-m", "pip", "install",
                      "-q", "--disable-pip-version-check", *pip_source, "-r", requirements)


def unpack_worker_code(home, archive, digest):
    """Unpack an uploaded tar.gz as ``code/<digest>`` and switch ``worker_code`` to it."""
    code = posixpath.join(home, "code")
    target = posixpath.join(code, digest)
    partial = target + ".partial"
    link = posixpath.join(home, "worker_code")
    return " && ".join([
        shell.join("rm", "-rf", partial),
        shell.join("mkdir", "-p", partial),
        shell.join("tar", "-xzf", archive, "-C", partial),
        shell.join("rm", "-rf", target, archive),
        shell.join("mv", partial, target),
        shell.join("ln", "-sfn", posixpath.join("code", digest), link + ".new"),
        shell.join("mv", "-Tf", link + ".new", link),
        f"find {shell.quote(code)} -mindepth 1 -maxdepth 1 ! -name {shell.quote(digest)} "
        "-exec rm -rf {} +",
    ])


def token_path(home):
    return posixpath.join(home, "auth_token")


def ray_env(home, local):
    """The environment every Ray process and driver of this cluster gets.

    Token authentication is always on; the token is read from a file, never passed in
    the environment or on a command line.
    """
    env = {
        MARKER: home,
        "PYTHONPATH": posixpath.join(home, "worker_code"),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": token_path(home),
    }
    if local:
        # A one-node cluster on this machine stays on the loopback address.
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    return env


def ray_start(settings, home, ip, num_cpus, head_address=None, local=False, timeout=None):
    """``ray start`` for the head (``head_address`` None) or for a node joining it."""
    role = ["--head", f"--port={settings.port}", "--dashboard-host=127.0.0.1"]
    if head_address:
        role = [f"--address={head_address}"]
    args = [
        *role,
        f"--node-ip-address={ip}",
        f"--num-cpus={num_cpus}",
        f"--temp-dir={temp_dir(home)}",
        "--disable-usage-stats",
    ]
    if settings.object_store_memory:
        args.append(f"--object-store-memory={settings.object_store_memory}")
    args.extend(shell.split_args(settings.start_args))
    limit = ["timeout", str(timeout)] if timeout else []
    return (f"cd {shell.quote(home)} && env {shell.env_assignments(ray_env(home, local))} "
            + shell.join(*limit, posixpath.join(venv_link(home), "bin", "ray"), "start", *args))


def probe(python, installation_directory, port, head=""):
    """Report the node's installation and Ray state as JSON (``~`` is the login user's home),
    with its route towards ``head`` (the head's SSH host name) when given."""
    return (shell.join(python, "-c", source("node_state.py"), "probe") + " "
            + shell.home_relative(installation_directory) + " " + shell.quote(port)
            + (" " + shell.quote(head) if head else ""))


def node_state(python, home, action, *args):
    """Run the node_state script (shipped inline) with the node's plain Python; ``home`` may
    start with ``~/`` (the login user's home) when the node was not probed."""
    return " ".join([shell.join(python, "-c", source("node_state.py"), action),
                     shell.home_relative(home), shell.join(*args)]).rstrip()


def setup_env(home, head_address, local):
    """The text of setup-env.sh: source it on a node to drive this cluster."""
    env = ray_env(home, local)
    del env[MARKER]
    code = env.pop("PYTHONPATH")
    env["RAY_ADDRESS"] = head_address
    exports = "".join(f"export {name}={shell.quote(value)}\n" for name, value in env.items())
    bin_dir = posixpath.join(venv_link(home), "bin")
    return (
        "# Written by ray-tasks: source it to use this node's Ray and reach its cluster.\n"
        f"export PATH={shell.quote(bin_dir)}:\"$PATH\"\n"
        f"export PYTHONPATH={shell.quote(code)}${{PYTHONPATH:+:$PYTHONPATH}}\n"
        f"{exports}"
    )


def tail_logs(home, lines=20):
    """The last lines of this node's newest raylet log (where a failed start says why)."""
    logs = posixpath.join(temp_dir(home), "session_latest", "logs")
    return (f"for f in {shell.quote(logs)}/raylet.out {shell.quote(logs)}/raylet.err; do "
            f"[ -s \"$f\" ] && echo \"== $f\" && tail -n {int(lines)} \"$f\"; done; true")
