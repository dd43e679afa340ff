"""Node self-test: Ray imports at the expected version and a throwaway local Ray works.

    <installation_directory>/.ray-tasks/venv/bin/python runtest.py [EXPECTED_VERSION]

The throwaway Ray lives in a private temporary directory with its own ports, so a cluster
already running on this node is neither joined nor disturbed. Prints one line per check;
exits non-zero on the first failure.
"""

import os
import secrets
import shutil
import socket
import sys
import tempfile


def main(argv):
    expected = argv[1] if len(argv) > 1 else None
    # The throwaway Ray gets a throwaway token (else Ray would write one to ~/.ray).
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    import ray

    if expected and ray.__version__ != expected:
        print(f"FAIL ray version {ray.__version__}, expected {expected}")
        return 1
    print(f"ok   ray {ray.__version__} imports (python {sys.version.split()[0]})")

    os.environ.pop("RAY_ADDRESS", None)
    temp_dir = tempfile.mkdtemp(prefix="rt-")
    try:
        ray.init(
            address="local",
            num_cpus=1,
            object_store_memory=80 * 1024 * 1024,
            include_dashboard=False,
            _temp_dir=temp_dir,
            logging_level="ERROR",
            log_to_driver=False,
        )

        @ray.remote
        def hostname():
            return socket.gethostname()

        name = ray.get(hostname.remote(), timeout=120)
        print(f"ok   a task ran on {name}")
        payload = os.urandom(1024 * 1024)
        if ray.get(ray.put(payload), timeout=60) != payload:
            print("FAIL an object did not round-trip through the object store")
            return 1
        print("ok   a 1 MiB object round-tripped through the object store")
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
