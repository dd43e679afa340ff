"""The worker directory: packed once on the controller, shipped to nodes that lack it.

The archive is reproducible (sorted names, fixed times and owners), so its digest names the
content: a node whose ``worker_code`` already points at that digest gets nothing.
"""

import dataclasses
import gzip
import hashlib
import io
import os
import posixpath
import tarfile

from . import ray_commands

SKIPPED = ("__pycache__", ".git", ".hg", ".svn", ".venv", ".mypy_cache", ".pytest_cache")


class WorkerCodeError(Exception):
    """The worker directory cannot be used."""


@dataclasses.dataclass(frozen=True)
class Bundle:
    archive: bytes
    digest: str
    requirements: str | None


def _members(root):
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(name for name in dirs if name not in SKIPPED)
        for name in sorted(files):
            if not name.endswith((".pyc", ".pyo")):
                yield os.path.join(folder, name)


def pack(directory):
    """A reproducible tar.gz of ``directory`` and its digest."""
    root = os.path.expanduser(directory)
    if not os.path.isdir(root):
        raise WorkerCodeError(f"worker directory {directory} does not exist (--worker-dir)")
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped:
        with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in _members(root):
                info = tar.gettarinfo(path, arcname=os.path.relpath(path, root))
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if info.isreg():
                    with open(path, "rb") as handle:
                        tar.addfile(info, handle)
                else:
                    tar.addfile(info)
    data = buffer.getvalue()
    return Bundle(
        archive=data,
        digest=hashlib.sha256(data).hexdigest()[:16],
        requirements=_requirements(root),
    )


def _requirements(root):
    path = os.path.join(root, "requirements.txt")
    return path if os.path.isfile(path) else None


def requirements_name(bundle):
    """A name for the wheels of the bundle's requirements.txt, changing with its content."""
    with open(bundle.requirements, "rb") as handle:
        return "requirements-" + hashlib.sha256(handle.read()).hexdigest()[:12]


def sync(host, bundle, offline):
    """Ship the bundle to ``host`` unless it has it; return a message saying which."""
    if host.facts.get("worker_code") == bundle.digest:
        return "worker code up to date"
    archive = posixpath.join(host.home, "code", "upload.tar.gz")
    host.put(bundle.archive, archive)
    host.run(ray_commands.unpack_worker_code(host.home, archive, bundle.digest),
             "unpack the worker code")
    if bundle.requirements:
        requirements = posixpath.join(host.home, "worker_code", "requirements.txt")
        host.run(ray_commands.install_requirements(host.home, requirements, offline),
                 "install the worker code's requirements.txt")
    host.facts["worker_code"] = bundle.digest
    return f"worker code synced ({len(bundle.archive)} bytes)"
