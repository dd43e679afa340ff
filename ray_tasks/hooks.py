"""ray-tasks' tasks as pre- and post-hooks of a project's own tasks.

Invoke runs a task once per command line only where its calls are equal, and a task named
on the command line is called with every flag (each at its default when not given) while a
bare hook is called with none: with ``pre=[install]``, ``inv install train`` would install
twice. Each hook here is its task called with every flag at its default, so it is the same
call as that task named bare on the command line, and runs once."""

import inspect

from invoke import call

from .tasks import inspection, install as install_tasks, lifecycle


def as_hook(task):
    """``task`` called with every flag at its default (as a bare command-line call)."""
    flags = list(inspect.signature(task.body).parameters.values())[1:]
    return call(task, **{flag.name: flag.default for flag in flags})


install = as_hook(install_tasks.install)
selftest = as_hook(install_tasks.selftest)
start = as_hook(lifecycle.start)
stop = as_hook(lifecycle.stop)
restart_workers = as_hook(lifecycle.restart_workers)
test = as_hook(inspection.test)
status = as_hook(inspection.status)
