"""The two parts of workerd's Python host that the Pyodide stage needs, inside Pyodide only.

Written from workerd's own source (cloudflare/workerd, src/pyodide/internal/):
- `setup_search_path` after setup_python_search_path.py: the Worker's modules first, then
  python_modules/ (the vendored packages) before site-packages, and its .pth files processed.
- `wrapper_func` after introspection.py: how a `fetch` reaches the entrypoint. Arguments
  become Python with the SDK's python_from_rpc (a JS Request becomes a `workers.Request`), the
  result goes back with python_to_rpc (a `workers.Response` becomes the JS Response).
run.mjs loads this file into Pyodide; CPython never imports it.
"""

from __future__ import annotations

import site
import sys
from functools import partial
from inspect import isawaitable
from typing import Any

# relaxed_call is Pyodide 314's; the pyodide-py in the venv (for typing only) is older.
from pyodide.code import relaxed_call  # type: ignore[attr-defined]


def setup_search_path(worker_dir: str, python_modules: str, process_pth_files: bool) -> None:
    sys.path.insert(0, worker_dir)
    first_site = next(i for i, entry in enumerate(sys.path) if "site-packages" in entry)
    sys.path.insert(first_site, python_modules)
    if process_pth_files:
        site.addsitedir(python_modules)


async def wrapper_func(relaxed: bool, inst: Any, prop: str, *args: Any, **kwargs: Any) -> Any:
    # Imported here: this module is loaded before python_modules/ is on the path.
    from workers import python_from_rpc, python_to_rpc

    method = getattr(inst, prop)
    positional = [python_from_rpc(value) for value in args]
    named = {key: python_from_rpc(value) for key, value in kwargs.items()}
    # workerd relaxes fetch: arguments the method does not take are dropped, no TypeError.
    invoke = partial(relaxed_call, method) if relaxed else method
    result = invoke(*positional, **named)
    return python_to_rpc(await result if isawaitable(result) else result)
