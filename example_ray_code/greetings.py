"""An example worker module: tasks on every node can import it (it is on their PYTHONPATH)."""

import socket

VERSION = 1


def hello(name):
    """A greeting that says which node answered."""
    return f"hello {name} from {socket.gethostname()} (greetings v{VERSION})"
