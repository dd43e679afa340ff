"""Node side: pass the wheelhouse from node to node, so the controller sends it to one node only.

Runs with the node's plain Python (standard library only). The manifest, on stdin, is a JSON
object: wheel name -> [size, sha256], as the controller computed them from its own copies.

    python3 wheel_relay.py fetch WHEELS_DIR URL       < manifest
        gets each wheel of the manifest WHEELS_DIR lacks from the relay at URL, checks its size
        and sha256, and only then renames it into place; prints {"bytes": N}; exit 1 naming the
        peer and the reason on any failure (what was verified stays).
    python3 wheel_relay.py serve WHEELS_DIR ADDRESS PORT IDLE   < manifest
        serves the manifest's wheels (nothing else) from WHEELS_DIR on ADDRESS:PORT, in the
        background, until IDLE seconds pass without a request; prints {"pid": PID} once
        listening; exit 1 naming the reason when it cannot listen.
    python3 wheel_relay.py stop WHEELS_DIR PID
        ends the relay PID serving WHEELS_DIR (and nothing else: a PID that is not such a
        relay is left alone).
"""

import hashlib
import http.server
import json
import os
import shutil
import socket
import sys
import threading
import time
import urllib.request

MARKER = "ray-tasks wheel relay"
CHUNK = 1 << 20
LIFETIME = 1800  # a relay ends after this many seconds whatever happens


def fetch(wheels, url, manifest):
    """Get the wheels of ``manifest`` that ``wheels`` lacks from ``url``; the bytes fetched."""
    os.makedirs(wheels, exist_ok=True)
    fetched = 0
    for name, (size, sha256) in sorted(manifest.items()):
        target = os.path.join(wheels, name)
        if os.path.isfile(target) and os.path.getsize(target) == size:
            continue
        partial = os.path.join(wheels, f".{name}.part")
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(f"{url}/{name}", timeout=30) as answer, \
                    open(partial, "wb") as out:
                while True:
                    chunk = answer.read(CHUNK)
                    if not chunk:
                        break
                    digest.update(chunk)
                    out.write(chunk)
        except OSError as error:
            _remove(partial)
            sys.exit(f"could not fetch {name} from {url}: {getattr(error, 'reason', error)}")
        got = os.path.getsize(partial)
        if got != size or digest.hexdigest() != sha256:
            _remove(partial)
            sys.exit(f"{name} from {url} does not match the controller's copy ({got} bytes, "
                     f"sha256 {digest.hexdigest()})")
        os.replace(partial, target)
        fetched += size
    print(json.dumps({"bytes": fetched}))


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


class Relay(http.server.ThreadingHTTPServer):
    """An HTTP server of a fixed set of files; it notes when it was last asked."""

    daemon_threads = True

    def __init__(self, address, wheels, names):
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, Wheel)
        self.wheels, self.names = wheels, names
        self.active, self.last = 0, time.monotonic()
        self.lock = threading.Lock()

    def idle_for(self):
        with self.lock:
            return 0 if self.active else time.monotonic() - self.last


class Wheel(http.server.BaseHTTPRequestHandler):
    """GET /NAME of one of the relay's files; anything else is 404."""

    def do_GET(self):
        name = self.path.lstrip("/")
        if name not in self.server.names:
            self.send_error(404)
            return
        with self.server.lock:
            self.server.active += 1
        try:
            with open(os.path.join(self.server.wheels, name), "rb") as wheel:
                self.send_response(200)
                self.send_header("Content-Length", str(os.fstat(wheel.fileno()).st_size))
                self.end_headers()
                shutil.copyfileobj(wheel, self.wfile, CHUNK)
        finally:
            with self.server.lock:
                self.server.active -= 1
                self.server.last = time.monotonic()

    def log_message(self, *args):
        pass


def serve(wheels, address, port, idle, manifest):
    """Listen, say so with the server's PID, and serve in the background until idle."""
    try:
        relay = Relay((address, int(port)), wheels, set(manifest))
    except OSError as error:
        sys.exit(f"cannot listen on {address}:{port}: {error.strerror or error}")
    ready_read, ready_write = os.pipe()
    if os.fork():
        os.close(ready_write)
        pid = os.read(ready_read, 32)
        if not pid:
            sys.exit(f"the relay on {address}:{port} ended as it started")
        print(json.dumps({"pid": int(pid)}))
        return
    os.close(ready_read)
    os.setsid()
    if os.fork():
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for stream in (0, 1, 2):
        os.dup2(null, stream)
    os.write(ready_write, str(os.getpid()).encode())
    os.close(ready_write)
    threading.Thread(target=relay.serve_forever, daemon=True).start()
    started = time.monotonic()
    while relay.idle_for() < float(idle) and time.monotonic() - started < LIFETIME:
        time.sleep(0.5)
    os._exit(0)


def stop(wheels, pid):
    """End the relay ``pid`` if it is the one serving ``wheels``."""
    try:
        with open(f"/proc/{int(pid)}/cmdline", "rb") as handle:
            arguments = handle.read().decode(errors="replace").split("\0")
    except OSError:
        return
    if any(MARKER in argument for argument in arguments) and "serve" in arguments \
            and wheels in arguments:
        os.kill(int(pid), 15)


if __name__ == "__main__":
    action, *args = sys.argv[1:]
    if action == "stop":
        stop(*args)
    else:
        {"fetch": fetch, "serve": serve}[action](*args, json.load(sys.stdin))
