"""`inv --help TASK` names, for each flag that sets a `ray` setting, the setting and its
default as config.DEFAULTS has it (read from the help as printed: Invoke consumes a task's
help dict when it first builds its flags)."""

import inspect
import re

import pytest

from conftest import run_inv
from ray_tasks import config, namespace
from ray_tasks.tasks.options import UNSET

# Flags named like a setting that do not write it: update's --version picks the release to
# move to (default: the newest), restart-workers' --num-workers the new count for the
# rejoining workers.
NOT_SETTINGS = {("update", "version"), ("restart-workers", "num_workers")}


def default_shown(key):
    default = config.DEFAULTS[key]
    return UNSET[key] if default in ("", False) else default


@pytest.mark.parametrize("name", sorted(namespace.tasks))
def test_each_setting_flag_names_its_setting_and_default(name):
    shown = run_inv("--help", name)
    assert shown.returncode == 0, shown.output
    text = re.sub(r"\s+", " ", shown.stdout)
    flags = list(inspect.signature(namespace.tasks[name].body).parameters)[1:]
    settings = [flag for flag in flags
                if flag in config.DEFAULTS and (name, flag) not in NOT_SETTINGS]
    assert len(settings) >= 4, flags  # the connection flags at least
    for key in settings:
        assert f"[ray.{key}, default: {default_shown(key)}]" in text, (key, text)


def test_defaults_without_a_value_say_what_they_mean():
    shown = re.sub(r"\s+", " ", run_inv("--help", "start").stdout)
    assert "[ray.num_workers, default: Ray counts each node's logical CPUs]" in shown
    assert "[ray.hosts, default: every node]" in shown
