"""Installing Ray on nodes: checks, the wheelhouse, building a venv beside the old one, switching.

A venv is built under ``.ray-tasks/venvs/`` (named for the Ray release, the Python and the
extras), with the node's worker code requirements, and only then does ``.ray-tasks/venv``
point at it, in one rename: a failure or Ctrl-C midway leaves the node on its old, working
installation.
"""

import posixpath
import sys

from . import local_commands, peer_wheels, ray_commands, report, uv_on_nodes, wheelhouse
from .node_scripts import source
from .hosts import StepError

NODE_SCRIPTS = ("runtest.py", "cluster_check.py")
MIN_FREE_BYTES = 1024**3


def check_pythons(runner, reference):
    """Fail every host whose Python differs from the ``reference`` host's (Ray refuses it)."""
    expected = reference.facts.python
    for host in runner.ready:
        found = host.facts.python
        if found != expected:
            runner.fail(host, f"Python {found} here but {expected} on {reference.node}: Ray "
                        "needs the same Python version on every node (set ray.python to a "
                        f"{expected} interpreter, or install one)")


def check_disk(runner, hosts):
    """Fail hosts whose installation directory has too little room for a new venv."""
    for host in hosts:
        free = host.facts.disk_free
        if free < MIN_FREE_BYTES:
            runner.fail(host, f"only {free // 2**20} MiB free for {host.home}: Ray's venv needs "
                        f"about {MIN_FREE_BYTES // 2**20} MiB; free some space or set "
                        "ray.installation_directory elsewhere")


def check_home_length(runner):
    """Fail hosts whose installation directory leaves Ray's socket paths too long."""
    for host in runner.ready:
        if len(host.home) > ray_commands.MAX_HOME_LENGTH:
            runner.fail(host, f"installation directory {host.home} is longer than "
                        f"{ray_commands.MAX_HOME_LENGTH} characters: Ray's socket paths under "
                        "it would be too long; choose a shorter ray.installation_directory")


def check_not_running(runner, hosts, settings):
    """Fail each of ``hosts`` that runs Ray of another release than ``settings`` ask for
    (install never moves a running node: update does)."""
    for host in hosts:
        if host.state.raylet and not up_to_date(host, settings):
            running = host.facts.ray or "(of an incomplete installation)"
            runner.fail(host, f"Ray {running} is running here: inv stop first, or use inv "
                        f"update --version={settings.version} to move a running cluster")


def say_up_to_date(runner, hosts, needed, settings):
    """Say so for each of ``hosts`` that is not ``needed`` (its venv is the wanted one)."""
    for host in hosts:
        if host not in needed:
            report.host_line(host.node, f"up to date (ray {settings.version})")
            runner.note(host, "up to date")


def install_venvs(runner, settings, hosts, sudo_password):
    """Give ``hosts`` the venv ``settings`` ask for: venv support where the Python lacks it
    (as root), the new venv built, then switched to."""
    lacking = [host for host in hosts if not host.facts.venv_support]
    runner.each(lambda host: add_venv_support(host, sudo_password), lacking)
    built = prepare_venvs(runner, settings, hosts)
    runner.each(switch_venv, built)


def wanted_venv(host, settings):
    """The name of the venv ``settings`` ask for on ``host`` (release, Python, extras)."""
    return ray_commands.venv_name(settings.version, host.facts.python, settings.extras)


def up_to_date(host, settings):
    """Whether the node's current venv is the one ``settings`` ask for."""
    return host.state.venv_name == wanted_venv(host, settings)


def newest_version(python_version):
    """The newest Ray release on the package index for this Python."""
    major_minor = "".join(python_version.split(".")[:2])
    result = local_commands.run(
        [sys.executable, "-m", "pip", "index", "versions", "ray", "--python-version",
         major_minor, "--disable-pip-version-check"])
    for line in result.stdout.splitlines():
        if line.startswith("ray (") and line.endswith(")"):
            return line[len("ray ("):-1]
    raise StepError.from_result("could not find the newest Ray release on the package index: "
                                "give --version", result)


def push_wheels(runner, settings, hosts, requirement, name, uv=False):
    """Download the wheels of ``requirement`` (pip arguments), and with ``uv`` uv's, once
    per platform among ``hosts`` and push each download only to the hosts of its platform;
    returns the hosts that have their wheels."""
    pushed = []
    for facts, group in wheelhouse.by_platform(hosts):
        pushed += push_platform_wheels(runner, settings, facts, group, requirement, name, uv)
    return [host for host in hosts if host in pushed]


def push_platform_wheels(runner, settings, facts, hosts, requirement, name, uv):
    """Download the wheels for the platform of ``facts`` (uv's too with ``uv``, where it has
    one) and deliver them to ``hosts`` (all of that platform: one pushed to, the others from
    their peers); returns the hosts that have them."""
    try:
        local, cached = wheelhouse.download(settings, facts, requirement, name)
    except StepError as error:
        for host in hosts:
            runner.fail(host, error.message)
        report.host_output("controller", error.output)
        return []
    report.say(f"wheelhouse: {name} " + ("(cached) " if cached else "") + f"in {local}")
    folders = [local] + (uv_on_nodes.wheel_folders(settings, facts, hosts) if uv else [])
    with report.transfer("wheels delivered", wheelhouse.wheel_bytes(folders) * len(hosts)) \
            as done:
        return peer_wheels.Relays(settings, folders, done).distribute(runner, hosts)


def prepare_venvs(runner, settings, hosts):
    """Wheelhouse push (if on) and venv build on ``hosts``; returns those that succeeded."""
    if hosts and settings.wheelhouse:
        hosts = push_wheels(runner, settings, hosts, [settings.requirement],
                            settings.requirement, uv=True)
    return runner.each(lambda host: build_venv(host, settings), hosts,
                       what="venvs built").succeeded


def add_venv_support(host, sudo_password):
    """Install the OS package that gives the node's Python its venv support, as root."""
    package = ray_commands.venv_package(host.facts.python)
    asks = sudo_password is not None and not host.facts.root
    command = ray_commands.as_root(ray_commands.install_os_package(package), host.facts.root,
                                   password_on_stdin=asks)
    result = host.run(command, f"install {package}", check=False,
                      stdin=sudo_password + "\n" if asks else None)
    output = result.stdout + result.stderr
    if result.exited != 0:
        raise StepError(root_failure(output, package)
                        or f"could not install {package} (exit {result.exited})", output)
    return f"installed {package}: Python {host.facts.python} can build venvs now"


def root_failure(output, package):
    """Say why a step run with sudo failed, and the fix, from what sudo printed."""
    lacks = f"this Python lacks venv support ({package})"
    yourself = f"or install {package} on the node yourself"
    if "a password is required" in output:
        return f"{lacks} and sudo wants a password: rerun with --prompt-for-sudo-password, " \
               + yourself
    if "incorrect password" in output or "no password was provided" in output:
        return f"sudo refused the password: rerun with the right one, {yourself}"
    if "sudoers" in output or "not allowed to" in output:
        return f"{lacks} and this user may not use sudo: {yourself}"
    if "sudo: not found" in output or "sudo: command not found" in output:
        return f"{lacks} and sudo is not installed: log in as root, {yourself}"
    if "no apt-get on this node" in output:
        return f"{lacks} and there is no apt-get here: install it with the OS's package manager"
    return None


def build_venv(host, settings):
    """Build the venv ``settings`` ask for beside the current one (not switched yet), with
    uv where it comes up (else pip), and with the requirements of the worker code the node
    holds, if any."""
    home = host.home
    venv = ray_commands.state_path(home, "venvs", wanted_venv(host, settings))
    uv_on_nodes.come_up(host, settings)
    command = ray_commands.create_venv(settings.python, home, venv, settings.requirement,
                                       offline=settings.wheelhouse, uv=host.state.uv)
    what = f"install {settings.requirement} into {venv}"
    digest = host.facts.worker_requirements
    if digest:
        requirements = posixpath.join(ray_commands.worker_code_link(home), "requirements.txt")
        command = f"{{ {command}; }} && " + ray_commands.install_requirements(
            home, venv, requirements, digest, settings.wheelhouse)
        what += " with the worker code's requirements.txt"
    try:
        result = host.run(command, what)
    except StepError as error:
        if "ensurepip is not available" in error.output:
            error.message += (": this Python lacks venv support (on Debian/Ubuntu: "
                              "apt-get install python3-venv)")
        raise
    host.state.new_venv = venv
    by_pip = f"; {ray_commands.REQUIREMENTS_BY_PIP}" \
        if ray_commands.REQUIREMENTS_BY_PIP in result.stdout else ""
    return f"ready: {venv} ({uv_on_nodes.installer(host)}{by_pip})"


def switch_venv(host):
    """Point the node's venv at the one just built (a kept one is self-tested again: its
    record is dropped); remove the venvs ray-tasks built before but it and the previous
    one."""
    new, old = host.state.new_venv, host.state.venv
    keep = {posixpath.basename(new), host.state.venv_name}
    stale = [name for name in host.state.venvs if name.removesuffix(".lock") not in keep]
    command = ray_commands.forget_selftest(new) + " && " + \
        ray_commands.relink_venv(host.home, new)
    if stale:
        command += " && " + ray_commands.remove_entries(host.home, "venvs", stale)
    host.run(command, "switch to the new venv")
    host.state.venvs = [name for name in host.state.venvs if name not in stale]
    host.state.previous_venv, host.state.venv = old, new
    host.state.venv_name = posixpath.basename(new)
    return f"now on ray {posixpath.basename(new)[len('ray-'):].split('-py')[0]}"


def switch_back(host):
    """Undo ``switch_venv`` (used when another node could not switch)."""
    host.run(ray_commands.relink_venv(host.home, host.state.previous_venv),
             "switch back to the previous venv")
    return "switched back to the previous venv"


def ship_scripts(host):
    """Copy the node scripts (runtest.py, cluster_check.py) into ray-tasks' directory."""
    for name in NODE_SCRIPTS:
        host.put(source(name).encode(), ray_commands.state_path(host.home, name))
