"""The controller downloads Ray's wheels once per platform of the nodes, and pushes them.

Nodes then install with ``uv pip install --no-index`` (or pip's): they need no internet,
and the index is asked once per release and platform (Python, machine, glibc) whatever the
number of nodes.
"""

import os
import posixpath
import sys

from . import local_commands, ray_commands, shell
from .hosts import StepError


def pip_platforms(machine, glibc):
    """The ``pip download --platform`` values a Linux node with this glibc accepts."""
    tags = [f"linux_{machine}"]
    if glibc:
        major, minor = (int(part) for part in glibc.split(".")[:2])
        if major == 2:
            tags += [f"manylinux_2_{m}_{machine}" for m in range(minor, 4, -1)]
            tags += [f"manylinux{alias}_{machine}" for alias, need in
                     (("2014", 17), ("2010", 12), ("1", 5)) if minor >= need]
    return tags


def download_command(requirement, dest, python_version, machine, glibc):
    """The pip command line (a list) that fetches ``requirement`` and its dependencies.

    ``requirement`` is a list of pip arguments: ``["ray==2.60.0"]`` or ``["-r", "req.txt"]``.
    """
    major, minor = python_version.split(".")[:2]
    platform_args = []
    for tag in pip_platforms(machine, glibc):
        platform_args += ["--platform", tag]
    return [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--dest", dest,
        "--implementation", "cp", "--python-version", f"{major}{minor}",
        "--abi", f"cp{major}{minor}", "--abi", "abi3", "--abi", "none",
        *platform_args, *requirement,
    ]


def platform(facts):
    """What a wheel download is made for: a node's Python (major.minor), machine and glibc."""
    return ".".join(facts.python.split(".")[:2]), facts.machine, facts.glibc or "none"


def by_platform(hosts):
    """``hosts`` grouped by ``platform``: [(facts of the group's first host, its hosts)], in
    the order each platform first appears. Each group needs its own download."""
    groups = {}
    for host in hosts:
        groups.setdefault(platform(host.facts), []).append(host)
    return [(group[0].facts, group) for group in groups.values()]


def cache_dir(settings, facts, name):
    """Where the wheels called ``name`` for this node's platform are kept locally."""
    python, machine, glibc = platform(facts)
    folder = f"{name}-py{python}-{machine}-glibc{glibc}"
    return os.path.join(os.path.expanduser(settings.wheel_cache), folder)


def download(settings, facts, requirement, name):
    """Fetch the wheels of ``requirement`` (pip arguments) once, keeping them as ``name``.

    Returns (directory, whether it was already in ``wheel_cache``).
    """
    dest = cache_dir(settings, facts, name)
    done = os.path.join(dest, ".complete")
    if os.path.exists(done):
        return dest, True
    os.makedirs(dest, exist_ok=True)
    command = download_command(requirement, dest, facts.python, facts.machine, facts.glibc)
    result = local_commands.run(command)
    if result.returncode != 0:
        raise StepError.from_result(f"could not download the wheels of {name} on this "
                                    "machine", result)
    open(done, "w").close()
    return dest, False


def wheels(local_dirs):
    """The (folder, name) of every wheel in ``local_dirs``."""
    return [(folder, name) for folder in local_dirs for name in sorted(os.listdir(folder))
            if name.endswith(".whl")]


def wheel_bytes(local_dirs):
    """The size of all the wheels in ``local_dirs``."""
    return sum(os.path.getsize(os.path.join(*wheel)) for wheel in wheels(local_dirs))


def push(host, *local_dirs, done=lambda count: None):
    """Copy the wheels of ``local_dirs`` the node lacks into its wheels directory; return
    the bytes sent. ``done`` is called with the size of each wheel as it is sent or found
    there already."""
    remote = ray_commands.wheels_dir(host.home)
    listing = host.run(f"mkdir -p {shell.quote(remote)} && ls {shell.quote(remote)}",
                       "list the node's wheels").stdout.split()
    sent = 0
    for folder, name in wheels(local_dirs):
        if name in listing:
            done(os.path.getsize(os.path.join(folder, name)))
            continue
        with open(os.path.join(folder, name), "rb") as handle:
            data = handle.read()
        host.put(data, posixpath.join(remote, name))
        sent += len(data)
        done(len(data))
    return sent
