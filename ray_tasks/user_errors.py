"""An operator's mistake (config, nodes file, flags, worker directory, token, known_hosts)
ends the task with one line and exit status 2, never a traceback."""

import contextlib

from invoke.exceptions import Exit

from . import auth_token, config, inventory
from .hostkeys import KnownHostsError
from .worker_code import WorkerCodeError


def user_error(message):
    """Stop the task with a one-line error (exit status 2)."""
    raise Exit(f"error: {message}", code=2)


@contextlib.contextmanager
def user_errors():
    """Turn an operator's mistake (config, nodes file, flags) into a one-line error."""
    try:
        yield
    except (config.ConfigError, inventory.InventoryError, WorkerCodeError,
            auth_token.TokenError, KnownHostsError) as error:
        user_error(error)
