"""The benchmark's report: markdown tables (results/<time>.md, printed too) and a plot of
time against hosts (results/<time>.png, with matplotlib)."""

import os
import platform
import resource
import shlex
import sys
import typing


class Rows(typing.NamedTuple):
    """The measurements: the rows ({column: value}) of each table, and ``extra``, {what:
    seconds, or a ratio as text} of the commands timed apart."""

    lifecycle: list
    extra: dict
    ray_up: list
    installs: list
    fanout: list


def markdown(title, rows):
    headers = list(rows[0])
    lines = [f"### {title}", "", "| " + " | ".join(headers) + " |",
             "|" + "---|" * len(headers)]
    for row in rows:
        cells = [f"{value:.2f}" if isinstance(value, float) else str(value)
                 if value is not None else "-" for value in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compare_ray_up(rows):
    """Add `ray up`'s time over `inv start`'s to each ray up row with the same host count."""
    starts = {row["hosts"]: row["inv start"] for row in rows.lifecycle}
    for row in rows.ray_up:
        if row["hosts"] in starts:
            row["ray up / inv start"] = row["ray up (all alive)"] / starts[row["hosts"]]


def compare_installs(rows):
    """Add, to each install row, its bytes sent to the hosts and its own work over those of
    the row of 1 host (the controller's link should carry the wheels once whatever N)."""
    one = next((row for row in rows.installs if row["hosts"] == 1), None)
    for row in rows.installs if one else []:
        row["sent / 1 host's"] = row["to the hosts MiB"] / one["to the hosts MiB"]
        row["own work / 1 host's"] = row["own work"] / one["own work"]


def machine():
    """This machine in one line: name, cores, memory, system, Python."""
    return (f"{platform.node()}: {os.cpu_count()} cores, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
            f"{platform.platform()}, Python {platform.python_version()}")


def text(stamp, runs, rows):
    """The whole report, in markdown."""
    lines = [f"## Benchmarks ({stamp}, median of {runs} runs)", "", f"Machine: {machine()}", ""]
    if rows.lifecycle:
        lines.append(markdown("Cluster start and stop (seconds)", rows.lifecycle))
    if rows.extra:
        lines.append("\n".join(f"- {name}: {value:.1f} s" if isinstance(value, float)
                               else f"- {name}: {value}"
                               for name, value in rows.extra.items()) + "\n")
    if rows.ray_up:
        lines.append(markdown("Ray's cluster launcher, local provider (seconds)", rows.ray_up))
    if rows.installs:
        lines.append(markdown("Install with the wheelhouse (seconds, MiB)", rows.installs))
    if rows.fanout:
        lines.append(markdown("Fan-out on sshd-only hosts: `exec true`, `status`, `stop`, "
                              "each against `pdsh -R ssh -f 32` sending the same command "
                              "(seconds; controller peak RSS)", rows.fanout))
    return "\n".join(lines)


def plot(path, rows):
    """Time against hosts, one panel per part measured (start and stop, fan-out), one line
    per tool; False without matplotlib or with nothing to plot."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = [(title, panel_rows) for title, panel_rows in (
        ("cluster start and stop", rows.lifecycle + rows.ray_up),
        ("exec true, status, stop (sshd-only hosts)", rows.fanout)) if panel_rows]
    if not panels:
        return False
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for axis, (title, panel_rows) in zip(axes[0], panels):
        plot_panel(axis, title, panel_rows)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    return True


def plot_panel(axis, title, rows):
    """One line per column of seconds in ``rows`` (not ratios, sizes or second runs)."""
    keys = dict.fromkeys(key for row in rows for key in row
                         if key != "hosts" and "/" not in key and "MiB" not in key
                         and "2nd" not in key)
    for key in keys:
        points = [(row["hosts"], row[key]) for row in rows if isinstance(row.get(key), float)]
        if points:
            axis.plot(*zip(*points), marker="o", label=key)
    axis.set_xlabel("hosts")
    axis.set_ylabel("seconds")
    axis.set_title(title)
    if axis.lines:
        axis.legend(fontsize=7)


def write(folder, stamp, runs, rows):
    """Write ``folder``/STAMP.md and STAMP.png, and print the report."""
    compare_ray_up(rows)
    compare_installs(rows)
    os.makedirs(folder, exist_ok=True)
    report = os.path.join(folder, f"{stamp}.md")
    content = text(stamp, runs, rows)
    with open(report, "w") as handle:
        handle.write(content)
    plotted = plot(os.path.join(folder, f"{stamp}.png"), rows)
    print(content)
    print(f"written {report}" + (" and the plot" if plotted else " (no matplotlib: no plot)"))
    print(f"benchmark process peak RSS: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
          f"command: {' '.join(shlex.quote(a) for a in sys.argv)}")
