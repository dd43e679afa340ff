"""uv on the nodes: the release they get (the controller's, pinned in requirements.txt), its
wheel per platform for the wheelhouse, bringing it up on a node, and when pip builds instead.

uv's wheel carries its binary: with the wheelhouse the controller downloads the wheel for each
platform of the nodes and pushes it with Ray's, and the node takes the binary out of it;
without, the node pip-installs uv from the index as it does Ray. Where uv has no build for a
node's platform, or does not run there, the node builds its venv with pip, and says why.
"""

import importlib.metadata

from . import ray_commands, report, wheelhouse
from .hosts import StepError


def release():
    """The uv release the nodes get: the one installed with the controller (requirements.txt
    pins it); None when the controller has none."""
    try:
        return importlib.metadata.version("uv")
    except importlib.metadata.PackageNotFoundError:
        return None


def wheel_folders(settings, facts, hosts):
    """The wheel cache folders to push with Ray's to ``hosts`` (all of the platform of
    ``facts``): uv's wheel for that platform and pip's (uv puts pip in the venvs it builds),
    downloaded once; [] when there is none, and then ``hosts`` will build with pip (it is
    said once)."""
    version = release()
    if version is None:
        return []
    try:
        return [wheelhouse.download(settings, facts, [f"uv=={version}", "pip"],
                                    f"uv=={version}-and-pip")[0]]
    except StepError:
        python, machine, glibc = wheelhouse.platform(facts)
        reason = (f"no uv {version} wheel for Python {python} on {machine} (glibc {glibc}) "
                  "could be downloaded")
    for host in hosts:
        host.state.no_uv = reason
    report.say(f"wheelhouse: {reason}: pip builds the venvs there")
    return []


def come_up(host, settings):
    """Bring uv up on ``host`` before its venv is built (and remove the other releases
    ray-tasks put there): ``host.state.uv`` becomes the binary's path, or
    ``host.state.no_uv`` says why pip builds the venv instead. Each venv holds a link to
    the uv that built it, so removing a release breaks none."""
    version = release()
    if host.state.no_uv:
        return
    if version is None:
        host.state.no_uv = "uv is not installed with ray-tasks here (pip install -r " \
                           "requirements.txt)"
        return
    command = ray_commands.install_uv(settings.python, host.home, version,
                                      offline=settings.wheelhouse)
    stale = [name for name in host.facts.uvs if name.removesuffix(".lock") != version]
    if stale:
        command += " && " + ray_commands.remove_entries(host.home, "uv", stale)
    result = host.run(command, "set up uv", check=False)
    if result.exited != 0:
        said = (result.stderr.strip() or result.stdout.strip()).splitlines()
        host.state.no_uv = f"uv {version} did not come up here" + (
            f": {said[-1]}" if said else f" (exit {result.exited})")
        return
    host.state.uv = ray_commands.uv_binary(host.home, version)


def installer(host):
    """What built (or builds) the node's venv, as its message says it: ``uv 0.13.9``, or
    ``pip (why not uv)``."""
    if host.state.uv:
        return f"uv {release()}"
    return f"pip ({host.state.no_uv})"
