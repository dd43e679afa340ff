"""Node side: Ray's session logs, whether Ray runs here or not (standard library only).

    python3 ray_logs.py bundle TEMP_DIR ARCHIVE SINCE_SECONDS MAX_BYTES
        pack the logs of the newest session (with SINCE_SECONDS > 0: every file of any
        session changed in that window) into ARCHIVE (a new file, mode 0600), newest files
        first until MAX_BYTES: a file that does not fit whole is cut to its last bytes,
        older ones are left out; print what was packed as JSON
    python3 ray_logs.py follow TEMP_DIR
        print, as they come, the new lines of the newest session's *.err files and the
        error lines of its other logs, each after its file's name, until nobody reads
"""

import io
import json
import os
import re
import select
import sys
import tarfile
import time

# A line that reports an error: Python's logging and tracebacks, and Ray's C++ log lines
# ``[2026-01-31 23:59:59,999 E 123 456] ...`` (E error, C critical, F fatal).
ERROR_LINE = re.compile(r"\bERROR\b|Traceback \(most recent call last\)|"
                        r"^\[\d{4}-\d\d-\d\d [\d:,.]+ [ECF] \d+ \d+\]|Check failed")
POLL_SECONDS = 0.5
# The lines Ray writes into a worker's output to tell its log monitor whose lines follow.
MARKERS = (":job_id:", ":task_name:", ":actor_name:", ":task_attempt_start:",
           ":task_attempt_end:")


def is_error_line(line):
    return ERROR_LINE.search(line) is not None


def sessions(temp_dir, since):
    """The session folders to read: the newest (session_latest), or with ``since`` all."""
    if not since:
        latest = os.path.join(temp_dir, "session_latest")
        return [os.path.realpath(latest)] if os.path.isdir(latest) else []
    try:
        names = sorted(os.listdir(temp_dir))
    except OSError:
        return []
    return [os.path.join(temp_dir, name) for name in names
            if name.startswith("session_") and name != "session_latest"
            and not os.path.islink(os.path.join(temp_dir, name))]


def log_files(temp_dir, since):
    """(mtime, size, path) of each log file to pack, the newest first."""
    found, cutoff = [], time.time() - since
    for session in sessions(temp_dir, since):
        for folder, _dirs, files in os.walk(os.path.join(session, "logs")):
            for name in files:
                path = os.path.join(folder, name)
                try:
                    stat = os.lstat(path)
                except OSError:
                    continue
                if os.path.isfile(path) and not os.path.islink(path) and (
                        not since or stat.st_mtime >= cutoff):
                    found.append((stat.st_mtime, stat.st_size, path))
    return sorted(found, reverse=True)


def add_file(tar, temp_dir, path, size, budget):
    """Add ``path`` (its last ``budget`` bytes when it is larger); the bytes added."""
    with open(path, "rb") as handle:
        if size > budget:
            handle.seek(size - budget)
        data = handle.read(min(size, budget))
    info = tarfile.TarInfo(os.path.relpath(path, temp_dir))
    info.size, info.mtime, info.mode = len(data), int(os.path.getmtime(path)), 0o644
    tar.addfile(info, io.BytesIO(data))
    return len(data)


def bundle(temp_dir, archive, since, max_bytes):
    since, budget = int(since), int(max_bytes)
    report = {"files": 0, "bytes": 0, "cut": [], "left_out": 0, "left_out_bytes": 0}
    descriptor = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(descriptor, "wb") as handle, tarfile.open(fileobj=handle, mode="w:gz") as tar:
        for _mtime, size, path in log_files(temp_dir, since):
            if budget <= 0:
                report["left_out"] += 1
                report["left_out_bytes"] += size
                continue
            try:
                added = add_file(tar, temp_dir, path, size, budget)
            except OSError:
                continue
            if added < size:
                report["cut"].append(os.path.relpath(path, temp_dir))
            budget -= added
            report["files"] += 1
            report["bytes"] += added
    print(json.dumps(report))


def reader_gone():
    """Whether nobody reads our output any more (the controller's connection closed)."""
    poll = select.poll()
    poll.register(sys.stdout.fileno(), select.POLLERR | select.POLLHUP)
    return bool(poll.poll(0))


def new_lines(path, offsets):
    """The complete lines added to ``path`` since the last look (a file first seen is read
    from its start, unless ``offsets`` marks it as seen before following began)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offsets.get(path, 0))
            data = handle.read()
    except OSError:
        return []
    complete = data[:data.rfind(b"\n") + 1]
    offsets[path] = offsets.get(path, 0) + len(complete)
    return complete.decode(errors="replace").splitlines()


def listing(temp_dir):
    """The newest session's logs folder (looked up again each time: a restart makes a new
    session) and the names in it."""
    logs = os.path.realpath(os.path.join(temp_dir, "session_latest", "logs"))
    try:
        return logs, sorted(os.listdir(logs))
    except OSError:
        return logs, []


def follow(temp_dir):
    logs, names = listing(temp_dir)
    offsets = {}
    for name in names:
        try:
            offsets[os.path.join(logs, name)] = os.path.getsize(os.path.join(logs, name))
        except OSError:
            pass
    while not reader_gone():
        logs, names = listing(temp_dir)
        for name in names:
            path = os.path.join(logs, name)
            for line in new_lines(path, offsets):
                if line.startswith(MARKERS):
                    continue
                if name.endswith(".err") or is_error_line(line):
                    sys.stdout.write(f"{name}: {line}\n")
        sys.stdout.flush()
        time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    {"bundle": bundle, "follow": follow}[sys.argv[1]](*sys.argv[2:])
