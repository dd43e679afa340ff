"""Node side: take the uv binary out of its wheel (pushed by the controller's wheelhouse).

Runs with the node's plain Python (standard library only): no pip, no unzip needed.

    python3 unpack_uv.py WHEELS_DIR VERSION TARGET

writes TARGET (mode 0755) from ``uv-VERSION-*.whl`` in WHEELS_DIR; exit 1 naming what is
missing when there is no such wheel (uv has no build for this node's platform).
"""

import glob
import os
import shutil
import sys
import zipfile


def unpack(wheels, version, target):
    """Copy ``uv-<version>.data/scripts/uv`` of the wheel in ``wheels`` to ``target``."""
    found = sorted(glob.glob(os.path.join(wheels, f"uv-{version}-*.whl")))
    if not found:
        sys.exit(f"no uv {version} wheel in {wheels}")
    member = f"uv-{version}.data/scripts/uv"
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with zipfile.ZipFile(found[0]) as wheel, wheel.open(member) as source, \
            open(target, "wb") as binary:
        shutil.copyfileobj(source, binary)
    os.chmod(target, 0o755)


if __name__ == "__main__":
    unpack(*sys.argv[1:4])
