"""The logs task: Ray's session logs of every node collected here, or followed live."""

import os
import signal

from invoke import task

from .. import log_collection, report
from ..cluster import Cluster
from ..user_errors import user_error
from .options import COMMON_HELP, common

LOGS_HELP = {
    **COMMON_HELP,
    "out": "Folder to put the logs in, as OUT/<node>/session_.../logs/... (default: "
           "ray-logs-<date>-<time> here).",
    "since": "Only files changed in this window (90s, 10m, 2h, 1d), from every session; "
             "default: the newest session's logs.",
    "grep": "Also print the lines matching this regular expression.",
    "follow": "Print the new lines of every node's Ray error streams (*.err files, error "
              "lines of the other logs) live, until Ctrl-C; nothing is saved.",
    "max-size": "At most this much log per node (default 100M): the newest files first, "
                "a file that does not fit cut to its last bytes.",
}
# At most this many --grep matches are printed per node (all are in the files).
GREP_SHOWN = 20


def ray_state(host):
    facts = host.facts
    return "head" if facts.gcs else "worker" if facts.raylet else "not running"


def error_counts(errors):
    return ", ".join(f"{name} {len(lines)}" for name, lines in sorted(errors.items())) or "-"


def print_collected(runner, out, found):
    """Where the logs went, each node's files and Ray state, and its errors grouped by
    Ray component (with the last error line of each)."""
    rows, troubled = [], []
    for host in runner.ready:
        packed, errors = found.get(host.node) or ({"files": 0, "bytes": 0}, {})
        rows.append((host.node, packed["files"], log_collection.size_text(packed["bytes"]),
                     ray_state(host), error_counts(errors)))
        if errors:
            troubled.append((host.node, errors))
    report.say(f"\nlogs in {out}\n" + report.table(
        ("node", "files", "size", "ray", "error lines"), rows))
    if not troubled:
        report.say("no errors in the logs")
    for node, errors in troubled:
        report.say(f"\nerrors on {node}:")
        for name, lines in sorted(errors.items()):
            path, number, line = lines[-1]
            count = f"{len(lines)} line" + ("s, the last" if len(lines) > 1 else ":")
            report.say(f"  {name}: {count} {path}:{number}:\n"
                       f"    {line[:300]}")


def print_matches(runner, out, pattern):
    """The lines matching --grep, per node (at most GREP_SHOWN each)."""
    for host in runner.ready:
        folder = os.path.join(out, log_collection.folder_name(host.node))
        matches = log_collection.grep(folder, pattern) if os.path.isdir(folder) else []
        for path, number, line in matches[:GREP_SHOWN]:
            report.host_line(host.node, f"{path}:{number}: {line}")
        if len(matches) > GREP_SHOWN:
            report.host_line(host.node, f"... {len(matches) - GREP_SHOWN} more matches in "
                                        f"{folder}")


def stop_following(*_signal):
    report.say("\nstopped following")
    os._exit(0)


@task(auto_shortflags=False, help=LOGS_HELP)
def logs(c, out=None, since=None, grep=None, follow=False, max_size=None, nodes=None,
         hosts=None, key_file=None, username=None, installation_directory=None, json=False,
         verbose=False):
    """Collect Ray's session logs of every node here and say which nodes had errors.

    Every node's logs, Ray running there or not.

    One archive per node into OUT/<node>/ (bounded by --max-size per node), then the
    error lines (ERROR, tracebacks, Ray's E/F lines) grouped by node and component."""
    cluster = Cluster(c, **common(nodes, hosts, key_file, username, installation_directory,
                                  json, verbose))
    try:
        seconds = log_collection.parse_duration(since)
        max_bytes = log_collection.parse_max_size(max_size)
        pattern = log_collection.parse_pattern(grep)
    except log_collection.LogsError as error:
        user_error(error)
    with cluster.runner as runner:
        if follow:
            report.say(f"following the Ray error streams of {len(runner.ready)} nodes "
                       "(Ctrl-C ends)")
            signal.signal(signal.SIGINT, stop_following)
            runner.each(log_collection.follow)
            runner.finish("logs")
            return
        out = os.path.abspath(os.path.expanduser(out or log_collection.default_out()))
        os.makedirs(out, exist_ok=True)
        found = {}
        runner.each(lambda host: log_collection.collect(host, out, seconds, max_bytes, found))
        print_collected(runner, out, found)
        if pattern:
            print_matches(runner, out, pattern)
        runner.finish("logs", details={"out": out})
