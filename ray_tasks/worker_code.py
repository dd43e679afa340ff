"""The worker directory: packed once on the controller, shipped to nodes that lack it.

The archive is reproducible (sorted names, fixed times and owners), so its digest names the
content: a node whose ``worker_code`` already points at that digest gets nothing. The
requirements.txt in it follows the venv: each venv records the digest of the requirements it
holds, and a venv that lacks them gets them (a new venv before it is switched to, the current
one when the code is synced).
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
    requirements_digest: str | None = None


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
    requirements = _requirements(root)
    return Bundle(
        archive=data,
        digest=hashlib.sha256(data).hexdigest()[:16],
        requirements=requirements,
        requirements_digest=_file_digest(requirements) if requirements else None,
    )


def _requirements(root):
    path = os.path.join(root, "requirements.txt")
    return path if os.path.isfile(path) else None


def _file_digest(path):
    """What a venv records of the requirements.txt installed in it (the node's probe
    computes the same from the node's copy)."""
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()[:16]


def requirements_name(bundle):
    """A name for the wheels of the bundle's requirements.txt, changing with its content."""
    with open(bundle.requirements, "rb") as handle:
        return "requirements-" + hashlib.sha256(handle.read()).hexdigest()[:12]


def sync(host, bundle, offline):
    """Ship the bundle to ``host`` unless it has it, and install its requirements.txt into
    the current venv unless the venv records them; return a message saying what was done."""
    home = host.home
    done = []
    if host.state.worker_code != bundle.digest:
        archive = ray_commands.state_path(home, "code", "upload.tar.gz")
        host.put(bundle.archive, archive)
        host.run(ray_commands.unpack_worker_code(home, archive, bundle.digest,
                                                 host.state.codes),
                 "unpack the worker code")
        host.state.worker_code = bundle.digest
        host.state.codes = [bundle.digest]
        done.append(f"worker code synced ({len(bundle.archive)} bytes)")
    if bundle.requirements and host.state.requirements != bundle.requirements_digest:
        requirements = posixpath.join(ray_commands.worker_code_link(home), "requirements.txt")
        result = host.run(ray_commands.install_requirements(
            home, ray_commands.venv_link(home), requirements, bundle.requirements_digest,
            offline), "install the worker code's requirements.txt")
        host.state.requirements = bundle.requirements_digest
        by_pip = ray_commands.REQUIREMENTS_BY_PIP in result.stdout
        done.append(ray_commands.REQUIREMENTS_BY_PIP if by_pip else "requirements.txt installed")
    return "; ".join(done) or "worker code up to date"
