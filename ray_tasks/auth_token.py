"""The cluster's Ray authentication token, kept on the controller with mode 0600."""

import os
import secrets


class TokenError(Exception):
    """The token file cannot be used."""


def load_or_create(path):
    """The token stored at ``path``, created (256 random bits, mode 0600) if missing."""
    path = os.path.expanduser(path)
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, encoding="ascii") as handle:
            token = handle.read().strip()
        if not token:
            raise TokenError(f"{path} is empty: delete it to have a new token made")
        return token
    token = secrets.token_hex(32)
    with open(descriptor, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
    return token
