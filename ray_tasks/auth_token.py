"""The cluster's Ray authentication token, kept on the controller with mode 0600."""

import os
import secrets


def load_or_create(path):
    """The token stored at ``path``, created (256 random bits, mode 0600) if missing."""
    path = os.path.expanduser(path)
    try:
        with open(path, encoding="ascii") as handle:
            token = handle.read().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    token = secrets.token_hex(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(descriptor, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
    return token
