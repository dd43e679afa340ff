"""The shell commands run on the nodes, built from settings as plain text (no I/O here).

Every path is absolute (the node's installation directory, as the probe reported it) and
every value is quoted. ray-tasks keeps everything it writes on a node in one directory of
its own, ``STATE_DIR`` under the installation directory ``home``, made together with its
``OWNER_FILE``; only ``setup-env.sh`` (what users source) is written beside it:

    setup-env.sh                              source it to drive this cluster
    .ray-tasks/owner                          says ray-tasks made this directory
    .ray-tasks/venv -> venvs/ray-<version>-py<python>[-<extras>]   Ray's virtualenv
    .ray-tasks/worker_code -> code/<digest>   the synced worker directory
    .ray-tasks/auth_token                     the cluster's Ray token (mode 0600)
    .ray-tasks/cluster.json                   the settings the cluster was started with
    .ray-tasks/setup-env.sha256               the setup-env.sh files ray-tasks wrote
    .ray-tasks/runtest.py, cluster_check.py, wheels/, tmp/ (Ray's logs and sockets)
    .ray-tasks/uv/<version>/bin/uv, uv-cache/ uv, which builds the venvs, and its cache
    .ray-tasks/jobs/                          a submitted job's files until Ray holds them

Clean-up removes entries of ``venvs/``, ``code/`` and ``uv/`` by name, never by a pattern over a
directory: only names the probe listed in ray-tasks' own directory.
"""

import json
import posixpath
import re

from . import ray_ports, shell
from .node_scripts import source
from .node_scripts.node_state import (MARKER, OWNER_FILE, REQUIREMENTS_RECORD, SELFTEST_RECORD,
                                      SETUP_ENV, SETUP_ENV_RECORD, STATE_DIR)

DEFAULT_EXTRAS = "default"

# Ray's longest socket path is <temp dir>/session_<YYYY-MM-DD>_<HH-MM-SS>_<usec>_<pid>/sockets/
# plasma_store, and a Unix socket path holds at most 107 bytes (108 with its NUL). The temp dir
# is <home>/.ray-tasks/tmp and the PID may have 7 digits (pid_max 4194304 on systemd machines):
# 107 - len("/.ray-tasks/tmp/") 16 - len("session_2026-01-31_23-59-59_999999_4194303") 42
#     - len("/sockets/plasma_store") 21 = 28 characters for the installation directory.
SOCKET_PATH_MAX = 107
MAX_HOME_LENGTH = (SOCKET_PATH_MAX - len(f"/{STATE_DIR}/tmp/")
                   - len("session_2026-01-31_23-59-59_999999_4194303")
                   - len("/sockets/plasma_store"))


def state_path(home, *names):
    """A path inside ray-tasks' own directory on the node."""
    return posixpath.join(home, STATE_DIR, *names)


def extras_tag(extras):
    """The part of a venv's name that tells its pip extras apart: nothing for the default
    extras, ``core`` for none, else the normalised extras joined by ``+``."""
    names = sorted({re.sub(r"[-_.]+", "-", name.strip().lower())
                    for name in extras.split(",") if name.strip()})
    if names == [DEFAULT_EXTRAS]:
        return ""
    return "+".join(names) or "core"


def venv_name(version, python_version, extras=DEFAULT_EXTRAS):
    """E.g. ``ray-2.60.0-py3.11.7`` (default extras) or ``ray-2.60.0-py3.11.7-core``."""
    tag = extras_tag(extras)
    return f"ray-{version}-py{python_version}" + (f"-{tag}" if tag else "")


def venv_path(home, version, python_version, extras=DEFAULT_EXTRAS):
    return state_path(home, "venvs", venv_name(version, python_version, extras))


def venv_link(home):
    return state_path(home, "venv")


def worker_code_link(home):
    return state_path(home, "worker_code")


def temp_dir(home):
    return state_path(home, "tmp")


def wheels_dir(home):
    return state_path(home, "wheels")


def cluster_file(home):
    return state_path(home, "cluster.json")


def setup_env_path(home):
    return posixpath.join(home, SETUP_ENV)


def enter_cluster_env(installation_directory):
    """Shell text that enters the installation directory (``~`` is the login user's home)
    and sources setup-env.sh there, but only the one ray-tasks wrote (its sha256 is
    recorded): a file of that name that is the user's own is never run."""
    digest = f'"$(sha256sum < {SETUP_ENV} | cut -d " " -f 1)"'
    record = shell.quote(posixpath.join(STATE_DIR, SETUP_ENV_RECORD))
    return (f"cd {shell.home_relative(installation_directory)} 2>/dev/null && "
            f"[ -f {SETUP_ENV} ] && grep -qxF {digest} {record} 2>/dev/null && "
            f". ./{SETUP_ENV}; ")


def claim(home):
    """Make ray-tasks' own directory and its owner file together (``mkdir`` fails on a
    directory that is already there: ray-tasks never adopts one it did not make). It holds
    the cluster's token: mode 0700, no one else may list or enter it."""
    state = state_path(home)
    note = "ray-tasks made this directory: it deletes and rewrites what is inside.\n"
    return " && ".join([
        shell.join("mkdir", "-p", home),
        shell.join("mkdir", "-m", "700", state),
        f"printf %s {shell.quote(note)} > {shell.quote(state_path(home, OWNER_FILE))}",
    ])


def place_setup_env(home):
    """Move the setup-env.sh written in ray-tasks' directory to where users source it."""
    return shell.join("mv", "-Tf", state_path(home, SETUP_ENV + ".new"), setup_env_path(home))


def built_once(path, build):
    """Shell text that makes ``path`` with the commands ``build`` (after removing whatever
    is there) unless it is complete already: complete means ``path/.complete`` exists,
    touched once ``build`` succeeded. The build holds a lock beside ``path``: a build left
    running on the node by a lost connection or Ctrl-C finishes before a rerun looks again."""
    done = posixpath.join(path, ".complete")
    complete = f"[ -f {shell.quote(done)} ]"
    steps = " && ".join([shell.join("rm", "-rf", path), *build, shell.join("touch", done)])
    locked = shell.join("flock", path + ".lock", "sh", "-c", f"{complete} || {{ {steps}; }}")
    return (f"{complete} || {{ {shell.join('mkdir', '-p', posixpath.dirname(path))} && "
            f"{locked}; }}")


def index_args(home, offline):
    """Where pip or uv find packages: the pushed wheels alone when ``offline``, else the
    index."""
    return ["--no-index", "--find-links", wheels_dir(home)] if offline else []


def uv_dir(home, version):
    """Where uv ``version`` is kept on the node: ``bin/uv`` inside, ``.complete`` once whole."""
    return state_path(home, "uv", version)


def uv_binary(home, version):
    return posixpath.join(uv_dir(home, version), "bin", "uv")


def uv_run(home, uv, *args):
    """Run the uv binary ``uv`` with its cache in ray-tasks' directory (hard links from it
    into the venvs cost no copy), on the node's own Pythons only (never one uv manages or
    would download)."""
    env = {"UV_CACHE_DIR": state_path(home, "uv-cache"), "UV_PYTHON_DOWNLOADS": "never",
           "UV_PYTHON_PREFERENCE": "only-system"}
    return f"env {shell.env_assignments(env)} " + shell.join(uv, *args)


def install_uv(python, home, version, offline):
    """Put uv ``version`` on the node unless it is there whole, then run it once (``uv
    --version`` fails where it cannot run): ``offline``, unpacked from its wheel among the
    pushed wheels; else pip-installed from the index into a small venv of its own."""
    folder = uv_dir(home, version)
    if offline:
        fetch = [node_python(python, "unpack_uv.py", wheels_dir(home), version,
                             uv_binary(home, version))]
    else:
        fetch = [shell.join(python, "-m", "venv", folder),
                 shell.join(posixpath.join(folder, "bin", "python"), "-m", "pip", "install",
                            "-q", "--disable-pip-version-check", "--only-binary=:all:",
                            f"uv=={version}")]
    return f"{{ {built_once(folder, fetch)}; }} && " + shell.join(uv_binary(home, version),
                                                                 "--version")


def create_venv(python, home, venv, requirement, offline, uv=None):
    """Build a fresh venv holding ``requirement``, byte-compiled, unless a complete one is
    there already (the previous release, kept for a fast switch back; see built_once).
    With ``uv`` (the binary's path on the node) uv makes it and installs into it, and pip
    (not byte-compiled: it is rarely run), as a venv of the Python's own has it; the venv
    keeps a hard link to that uv. Else the Python's venv and pip."""
    python_in_venv = posixpath.join(venv, "bin", "python")
    if uv:
        venv_uv = posixpath.join(venv, "bin", "uv")
        install = [uv, "pip", "install", "-q", "--python", python_in_venv,
                   *index_args(home, offline)]
        build = [uv_run(home, uv, "venv", "-q", "--python", python, venv),
                 uv_run(home, *install, "--compile-bytecode", requirement),
                 uv_run(home, *install, "pip"),
                 f"{{ {shell.join('ln', '-f', uv, venv_uv)} 2>/dev/null || "
                 f"{shell.join('cp', uv, venv_uv)}; }}"]
    else:
        build = [shell.join(python, "-m", "venv", venv),
                 shell.join(python_in_venv, "-m", "pip", "install", "-q",
                            "--disable-pip-version-check", *index_args(home, offline),
                            requirement)]
    return built_once(venv, build)


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


def relink_venv(home, venv):
    """Point the node's ``venv`` link at ``venv`` in one rename."""
    link = venv_link(home)
    return " && ".join([
        shell.join("ln", "-sfn", venv, link + ".new"),
        shell.join("mv", "-Tf", link + ".new", link),
    ])


def remove_entries(home, folder, names):
    """Delete the entries ``names`` (as listed by the probe) of ``folder`` in ray-tasks'
    own directory, each by its path."""
    return shell.join("rm", "-rf", "--", *(state_path(home, folder, name) for name in names))


REQUIREMENTS_BY_PIP = "requirements.txt installed by pip: uv refused it"


def install_requirements(home, venv, requirements, digest, offline):
    """Install the worker code's requirements file into ``venv`` with the venv's own uv
    when uv built it (and pip where uv refuses the file: pip's format is the reference;
    then REQUIREMENTS_BY_PIP is printed), else with its pip; unless the venv records
    ``digest`` as installed. The record is removed before the install runs and written only
    once it succeeded: a failed install leaves none, so the next run installs again."""
    record = shell.quote(posixpath.join(venv, REQUIREMENTS_RECORD))
    venv_uv = posixpath.join(venv, "bin", "uv")
    python = posixpath.join(venv, "bin", "python")
    sources = index_args(home, offline)
    with_uv = uv_run(home, venv_uv, "pip", "install", "-q", "--compile-bytecode", "--python",
                     python, *sources, "-r", requirements)
    with_pip = shell.join(python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          *sources, "-r", requirements)
    install = " && ".join([
        f"rm -f {record}",
        f"if [ -x {shell.quote(venv_uv)} ]; then {with_uv} || {{ {with_pip} && echo "
        f"{shell.quote(REQUIREMENTS_BY_PIP)}; }}; else {with_pip}; fi",
        f"printf '%s\\n' {shell.quote(digest)} > {record}",
    ])
    return f'[ "$(cat {record} 2>/dev/null)" = {shell.quote(digest)} ] || {{ {install}; }}'


def forget_selftest(venv):
    """Drop ``venv``'s record of a passed self-test."""
    return shell.join("rm", "-f", posixpath.join(venv, SELFTEST_RECORD))


def recording_selftest(home, test):
    """Run the self-test command ``test``; the current venv records the time it passed
    (UTC, the node's clock) and holds no record while it runs or after it failed."""
    record = shell.quote(posixpath.join(venv_link(home), SELFTEST_RECORD))
    return f"rm -f {record} && {test} && date -u +%Y-%m-%dT%H:%M:%SZ > {record}"


def unpack_worker_code(home, archive, digest, stale):
    """Unpack an uploaded tar.gz as ``code/<digest>``, switch ``worker_code`` to it and
    delete the ``stale`` entries of ``code/`` (names the probe listed)."""
    target = state_path(home, "code", digest)
    partial = target + ".partial"
    link = worker_code_link(home)
    return " && ".join([
        shell.join("rm", "-rf", partial),
        shell.join("mkdir", "-p", partial),
        shell.join("tar", "-xzf", archive, "-C", partial),
        shell.join("rm", "-rf", target, archive),
        shell.join("mv", partial, target),
        shell.join("ln", "-sfn", posixpath.join("code", digest), link + ".new"),
        shell.join("mv", "-Tf", link + ".new", link),
        remove_entries(home, "code", [name for name in stale if name != digest]),
    ])


def token_path(home):
    return state_path(home, "auth_token")


def ray_env(home, local):
    """The environment every Ray process and driver of this cluster gets.

    Token authentication is always on; the token is read from a file, never passed in
    the environment or on a command line.
    """
    env = {
        MARKER: home,
        "PYTHONPATH": worker_code_link(home),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": token_path(home),
    }
    if local:
        # A one-node cluster on this machine stays on the loopback address.
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    return env


def resource_args(resources):
    """The ``ray start`` arguments that give a node its resources, from its NodeSettings laid
    over the configured ones (``NodeSettings.over``); what is not set there Ray detects."""
    args = [f"--{flag}={value}" for flag, value in (
        ("num-cpus", resources.cpus), ("num-gpus", resources.gpus),
        ("memory", resources.memory), ("object-store-memory", resources.object_store_memory))
        if value is not None]
    if resources.resources:
        args.append("--resources=" + json.dumps(dict(resources.resources), sort_keys=True))
    return args


def ray_start(settings, home, ip, resources, head_address=None, local=False, timeout=None):
    """``ray start`` for the head (``head_address`` None) or for a node joining it, with the
    node's ``resources`` (resource_args)."""
    role = ["--head", "--dashboard-host=127.0.0.1"]
    if head_address:
        role = [f"--address={head_address}"]
    args = [
        *role,
        *ray_ports.plan(settings.port).start_args(head=not head_address),
        f"--node-ip-address={ip}",
        *resources,
        f"--temp-dir={temp_dir(home)}",
        "--disable-usage-stats",
    ]
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


def network_check(python, plan):
    """Run the network_check script (shipped inline) with the node's plain Python on
    ``plan``, the JSON text of what to listen on and connect to."""
    return shell.join(python, "-c", source("network_check.py"), plan)


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


def head_python(home, script, *args):
    """Run a node script (shipped inline) with the venv's Python, setup-env.sh sourced (the
    venv on PATH, the cluster's address and token file)."""
    python = posixpath.join(venv_link(home), "bin", "python")
    return (f". {shell.quote(setup_env_path(home))} && "
            + shell.join(python, "-c", source(script), *args))


def submit_job(home, archive, job_id, script, args):
    """Unpack a job's uploaded files into ``jobs/<job_id>`` and submit ``script`` (a path
    inside them) with ``args`` as a Ray job with that working directory."""
    folder = state_path(home, "jobs", job_id)
    return " && ".join([
        shell.join("mkdir", "-m", "700", folder),
        shell.join("tar", "-xzf", archive, "-C", folder),
        shell.join("rm", "-f", archive),
        head_python(home, "job_client.py", "submit", job_id, folder, script, *args),
    ])


def node_python(python, script, *args):
    """Run a node script (shipped inline, standard library only) with the node's plain
    Python."""
    return shell.join(python, "-c", source(script), *args)


def wheel_relay(python, home, action, *args):
    """Run the wheel relay (shipped inline) on the node's wheels directory: ``fetch URL``,
    ``serve ADDRESS PORT IDLE`` (both read the manifest on stdin) or ``stop PID``."""
    return node_python(python, "wheel_relay.py", action, wheels_dir(home), *args)


def interactive_shell(installation_directory):
    """Shell text for an operator's shell on a node: setup-env.sh sourced as by
    enter_cluster_env (saying so when there is none), then the login user's shell."""
    missing = shell.quote(f"ray-tasks: no setup-env.sh of ray-tasks in {installation_directory}"
                          ": Ray is not set up here (inv install start)")
    text = (f"{{ {enter_cluster_env(installation_directory)}}} || echo {missing} >&2; "
            'exec "${SHELL:-/bin/sh}" -i')
    return shell.join("sh", "-c", text)
