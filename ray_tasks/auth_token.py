"""The cluster's Ray authentication token, kept on the controller with mode 0600."""

import os
import secrets
import stat


class TokenError(Exception):
    """The token file cannot be used."""


def load_or_create(path):
    """The token stored at ``path``, created (256 random bits, mode 0600 from its first
    byte, in a directory made 0700) if missing."""
    path = os.path.expanduser(path)
    try:
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _load(path)
    except OSError as error:
        raise TokenError(f"auth_token_file: cannot create {path} ({error.strerror or error}):"
                         " set ray.auth_token_file to a path you can write") from None
    token = secrets.token_hex(32)
    with open(descriptor, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
    return token


def _load(path):
    """Read an existing token file; refuse one open to others, or one that holds no token."""
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISREG(mode):
            with open(path, "rb") as handle:
                data = handle.read()
    except OSError as error:
        raise TokenError(f"auth_token_file: cannot read {path} ({error.strerror or error}): "
                         "fix its permissions or set ray.auth_token_file") from None
    if not stat.S_ISREG(mode):
        raise TokenError(f"auth_token_file: {path} is not a file: point ray.auth_token_file "
                         "at the token file")
    if mode & 0o077:
        raise TokenError(f"auth_token_file: {path} is open to others (mode "
                         f"{stat.S_IMODE(mode):04o}): chmod 600 {path}")
    token = data.strip()
    if not token:
        raise TokenError(f"{path} is empty: delete it to have a new token made")
    if not (token.isascii() and token.decode().isprintable() and b" " not in token):
        raise TokenError(f"auth_token_file: {path} does not hold a token (one line of "
                         "printable ASCII): fix it, or delete it to have a new one made")
    return token.decode()
