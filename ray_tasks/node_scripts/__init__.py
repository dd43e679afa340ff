"""Scripts that run on the nodes: shipped as files or passed inline to the node's Python."""

import pathlib

_HERE = pathlib.Path(__file__).parent


def source(name):
    """The text of the node script ``name``."""
    return (_HERE / name).read_text(encoding="utf-8")
