"""The ``ray-tasks`` program: the collection ``inv`` shows in this repository, installed as a
command of its own that works from any directory (``nodes.txt`` is read from the current
one, as every relative path in the settings is)."""

import os

from invoke import Config, Program

from . import __version__
from .collection import namespace


class RayTasksConfig(Config):
    """Invoke's configuration under ray-tasks' own names: ``ray-tasks.yaml`` files
    (``/etc/ray-tasks.yaml``, ``~/.ray-tasks.yaml``, ``./ray-tasks.yaml``) and
    ``RAY_TASKS_*`` environment variables (``RAY_TASKS_RAY_NODES`` for ``ray.nodes``)."""

    prefix = "ray-tasks"
    env_prefix = "RAY_TASKS"


class RayTasksProgram(Program):
    """An Invoke program over ray-tasks' collection whose project configuration is the
    ``ray-tasks.yaml`` of the current directory."""

    def parse_collection(self):
        super().parse_collection()
        self.config.set_project_location(os.getcwd())
        self.config.load_project()


program = RayTasksProgram(
    name="ray-tasks",
    binary="ray-tasks",
    binary_names=["ray-tasks"],
    version=__version__,
    namespace=namespace,
    config_class=RayTasksConfig,
)


def main():
    """The ``ray-tasks`` console script."""
    program.run()
