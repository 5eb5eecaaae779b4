"""pytest plugin for the Oclgrind child run (``-p kernel_log``): records every kernel launched,
with the dtype its program was built for, and writes them, one ``name dtype`` a line, to the
file ``CLCONV_KERNEL_LOG`` names when the session ends. The Oclgrind test checks from it that
the subset ran every kernel of kernels_cl/ in every dtype it is used in."""

from __future__ import annotations

import os
import re

import pyopencl as cl

_seen: set[tuple[str, str]] = set()
_dtypes: dict[int, str] = {}  # program handle -> the CLCONV_DTYPE it was built with
_enqueue = cl.enqueue_nd_range_kernel


def _dtype(kernel) -> str:
    prog = kernel.get_info(cl.kernel_info.PROGRAM)
    dt = _dtypes.get(prog.int_ptr)
    if dt is None:
        dev = prog.get_info(cl.program_info.DEVICES)[0]
        opts = prog.get_build_info(dev, cl.program_build_info.OPTIONS)
        m = re.search(r"-DCLCONV_DTYPE=(\d+)", opts)
        dt = _dtypes[prog.int_ptr] = m.group(1) if m else "?"
    return dt


def _recording(queue, kernel, *args, **kwargs):
    _seen.add((kernel.function_name, _dtype(kernel)))
    return _enqueue(queue, kernel, *args, **kwargs)


cl.enqueue_nd_range_kernel = _recording


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("CLCONV_KERNEL_LOG")
    if path:
        with open(path, "w") as fh:
            fh.writelines(f"{name} {dt}\n" for name, dt in sorted(_seen))
