"""Ray's session logs of every node, fetched into one folder on the controller (one
archive per node, packed there by node_scripts/ray_logs.py, whether Ray runs or not), and
the errors found in them, grouped by node and Ray component."""

import collections
import datetime
import os
import re
import secrets
import tarfile

from . import ray_commands, report, shell
from .hosts import StepError, json_answer
from .node_scripts.ray_logs import is_error_line

DEFAULT_MAX_SIZE = 100 * 2**20
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]?)(?:i?B)?\s*$", re.IGNORECASE)
# The Ray component a log file belongs to, by the start of its name.
COMPONENTS = (("raylet", "raylet"), ("gcs_server", "gcs"), ("worker-", "workers"),
              ("python-core-worker", "workers"), ("python-core-driver", "drivers"),
              ("dashboard_agent", "agents"), ("runtime_env_agent", "agents"),
              ("dashboard", "dashboard"), ("runtime_env", "runtime_env"))


class LogsError(Exception):
    """A flag of ``inv logs`` cannot be used."""


def parse_duration(text):
    """Seconds from ``90``, ``90s``, ``10m``, ``2h`` or ``1d``; 0 for none."""
    if not text:
        return 0
    match = _DURATION.match(str(text))
    if not match or int(match.group(1)) == 0:
        raise LogsError(f"--since: {text!r} is not a duration (e.g. 90s, 10m, 2h, 1d)")
    number, unit = match.groups()
    return int(number) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def parse_max_size(text):
    """Bytes from ``500K``, ``100M``, ``2G`` (the default when empty)."""
    if not text:
        return DEFAULT_MAX_SIZE
    match = _SIZE.match(str(text))
    if not match or int(match.group(1)) == 0:
        raise LogsError(f"--max-size: {text!r} is not a size (e.g. 500K, 100M, 2G)")
    number, unit = match.groups()
    return int(number) * 1024 ** " KMG".index(unit.upper() or " ")


def parse_pattern(text):
    """The compiled --grep pattern (None for none)."""
    try:
        return re.compile(text) if text else None
    except re.error as error:
        raise LogsError(f"--grep: {text!r} is not a regular expression ({error})") from None


def default_out():
    return datetime.datetime.now().strftime("ray-logs-%Y%m%d-%H%M%S")


def folder_name(node):
    """A node's folder name under --out: its nodes-file address, with what a file name
    cannot hold (``/``, ``:`` of ports and IPv6, brackets, ``%``) replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9@._-]", "_", str(node)).strip("_.") or "node"


def component(name):
    """The Ray component of a log file, by its name (``other`` for the rest)."""
    return next((label for start, label in COMPONENTS if name.startswith(start)), "other")


def scan(folder):
    """{component: [(file, line number, line)]} of the error lines in the log files under
    ``folder`` (in the order of their names)."""
    found = collections.defaultdict(list)
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            with open(path, encoding="utf-8", errors="replace") as handle:
                for number, line in enumerate(handle, 1):
                    if is_error_line(line):
                        found[component(name)].append(
                            (os.path.relpath(path, folder), number, line.rstrip()))
    return dict(found)


def grep(folder, pattern):
    """[(file, line number, line)] of the lines under ``folder`` that match ``pattern``."""
    matches = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            with open(path, encoding="utf-8", errors="replace") as handle:
                matches.extend((os.path.relpath(path, folder), number, line.rstrip())
                               for number, line in enumerate(handle, 1)
                               if pattern.search(line))
    return matches


def safe_members(tar):
    """The archive's regular files with plain relative names (an archive from a node is
    not trusted to write anywhere else)."""
    for member in tar.getmembers():
        parts = member.name.split("/")
        if member.isreg() and not member.name.startswith("/") and ".." not in parts:
            yield member


def unpack(archive, folder):
    os.makedirs(folder, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extraction_filter = getattr(tarfile, "data_filter", None)
        for member in safe_members(tar):
            tar.extract(member, folder, set_attrs=False)


def fetch_logs(host, folder, since, max_bytes):
    """Pack the node's session logs there, fetch the archive into ``folder`` and unpack it;
    returns what the node packed (files, bytes, cut, left_out, left_out_bytes)."""
    home = host.home
    archive = ray_commands.state_path(home, f"logs-{secrets.token_hex(4)}.tar.gz")
    command = ray_commands.node_python(host.settings.python, "ray_logs.py", "bundle",
                                       ray_commands.temp_dir(home), archive, str(since),
                                       str(max_bytes))
    try:
        packed = json_answer(host.run(command, "pack the Ray logs"),
                             "the log packer's answer is not JSON")
        if packed["files"]:
            local = folder.rstrip(os.sep) + ".tar.gz"
            host.fetch(archive, local)
            try:
                unpack(local, folder)
            except (tarfile.TarError, OSError) as error:
                raise StepError(f"could not unpack the logs into {folder}: {error}") from None
            finally:
                os.remove(local)
    finally:
        host.run(shell.join("rm", "-f", archive), "remove the log archive", check=False)
    return packed


def size_text(amount):
    return f"{amount / 2**20:.1f} MiB"


def cap_note(packed, max_bytes):
    """The note for a node whose logs hit the size cap, or None."""
    if not packed["cut"] and not packed["left_out"]:
        return None
    parts = []
    if packed["cut"]:
        parts.append("cut to their last bytes: " + ", ".join(packed["cut"]))
    if packed["left_out"]:
        parts.append(f"{packed['left_out']} older files ({size_text(packed['left_out_bytes'])})"
                     " left out")
    return (f"size cap of {size_text(max_bytes)} reached: " + "; ".join(parts)
            + ": raise --max-size or narrow with --since")


def collect(host, out, since, max_bytes, found):
    """The step of one node: its logs into ``out``/<node>, what was packed and the errors
    in them recorded in ``found`` (by node); returns the node's message."""
    if host.state.state_dir != "ours":
        found[host.node] = None
        return "no ray-tasks installation here: no Ray logs"
    folder = os.path.join(out, folder_name(host.node))
    packed = fetch_logs(host, folder, since, max_bytes)
    found[host.node] = (packed, scan(folder) if packed["files"] else {})
    note = cap_note(packed, max_bytes)
    if not packed["files"]:
        return "no Ray logs (Ray never started here" + (" in that window)" if since else ")")
    return (f"{packed['files']} files ({size_text(packed['bytes'])}) into {folder}"
            + (f"; {note}" if note else ""))


def follow(host):
    """The step of one node for --follow: print its Ray error streams as they come."""
    if host.state.state_dir != "ours":
        return "no ray-tasks installation here: no Ray logs"
    command = ray_commands.node_python(host.settings.python, "ray_logs.py", "follow",
                                       ray_commands.temp_dir(host.home))
    result = host.stream(command, "follow the Ray logs", report.HostLines(host.node))
    if result.exited != 0:
        raise StepError(f"could not follow the Ray logs (exit {result.exited})")
    return "stopped"
