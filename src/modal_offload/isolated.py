"""Run one of our modules isolated from the folder it starts in (stdlib only).

`python -m modal_offload...` puts its working folder first on sys.path, and `PYTHONPATH`
(which projects often point at their own `src`) next: a workspace file named `json.py`,
`socket.py` or `logging.py` would then replace a standard module, and run with the user's
rights. Workspace content is not trusted: a cloned repository brings it, and a remote
command can write it there through sync back (issue 13, classes 3 and 6). `-I` (Python >=
3.4; `-P` needs 3.11) keeps the working folder, PYTHONPATH and the user site out of
sys.path; the bootstrap appends the folder holding our package (after the standard library,
so nothing there can shadow it) and runs the module as `-m` would. Used for every process
we start with someone else's working folder: the remote agent and worker
(`Session.module_argv`), the agent hooks, the runner's and shims' fallbacks.
"""

from __future__ import annotations

import os
import sys

# argv: ['-c', package_dir, module, *args]; one line, so it can sit in a hook's command.
BOOTSTRAP = ('import sys, runpy; sys.argv[1] and sys.path.append(sys.argv[1]); '
             'sys.argv = sys.argv[2:]; '
             'runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)')


def argv(python: str, package_dir: str, module: str, *args: str) -> list[str]:
    """`python` running `module` with `args`; `module` stays right before `args` so the
    command line still reads `... modal_offload.hooks claude ...`."""
    return [python, "-I", "-c", BOOTSTRAP, package_dir, module, *args]


def package_dir() -> str:
    """The folder holding this installation's `modal_offload` package."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def local_argv(module: str, *args: str) -> list[str]:
    """This interpreter (not resolved: a venv's python is a symlink whose target would lose
    the venv) running one of our modules, on this machine."""
    return argv(sys.executable, package_dir(), module, *args)
