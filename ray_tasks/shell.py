"""Building POSIX shell text: every value that enters a command goes through here."""

import shlex


def quote(value):
    """One shell word holding ``value`` exactly."""
    return shlex.quote(str(value))


def join(*words):
    """A command line from words, each quoted."""
    return " ".join(quote(word) for word in words)


def env_assignments(env):
    """``K='v' K2='v2'`` for prefixing a command; names are checked, values quoted."""
    parts = []
    for name, value in env.items():
        if not name.replace("_", "").isalnum() or name[0].isdigit():
            raise ValueError(f"not an environment variable name: {name!r}")
        parts.append(f"{name}={quote(value)}")
    return " ".join(parts)


def home_relative(path):
    """A shell word for ``path`` where a leading ``~/`` means the login user's home."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + quote(path[2:])
    return quote(path)


def split_args(text):
    """Split user-given extra arguments the way a shell would, without running anything."""
    return shlex.split(text) if text else []
