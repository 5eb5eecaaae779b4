"""The OpenCL runtime: platforms and devices, contexts and queues, program builds and their caches.

- Every platform and every device is enumerated (not only the first platform);
  device ids are ``opencl:<platform index>:<device index>``.
- One context and one in-order queue per device, created on first use.
- Programs are cached in memory per context, and as binaries on disk under a
  key that covers the source with its included headers, the build options
  (tuning macros included), the platform/device/driver strings and the
  clconv version.
- Build failures raise :class:`~clconv.errors.BuildError` carrying the build
  log, the kernel file and the options; OpenCL status codes appear by name.
- PoCL's CPU worker threads are pinned one per CPU (``POCL_AFFINITY=1``) unless
  the caller decided otherwise; see :func:`default_pocl_affinity`.
- PoCL's ``basic`` device (kernels run on the calling thread: ~1 us per launch where
  the multi-threaded device takes ~30 us) is added next to its ``pthread`` device where
  that hides no other PoCL device; see :func:`default_pocl_devices`. It is listed after
  the platform's other devices, so ``opencl:0:0`` stays the multi-threaded device.

Includes are resolved here, textually, rather than with ``-I``: the source
the device compiles is then exactly the source that was hashed, and install
paths (with spaces, or different per machine) never reach a driver.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...backend import Device
from ...errors import BackendError, BuildError, UnsupportedError
from ..._version import __version__

try:  # pyopencl is a dependency, but a broken ICD setup must not break `import clconv`
    import pyopencl as cl
    import pyopencl.array as cl_array

    _IMPORT_ERROR: str | None = None
except Exception as exc:  # pragma: no cover - exercised only on broken installs
    cl = None  # type: ignore[assignment]
    cl_array = None  # type: ignore[assignment]
    _IMPORT_ERROR = f"{type(exc).__name__}: {exc}"

#: Values that turn a clconv switch off.
_OFF = ("0", "false", "no", "off")

_INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"[ \t]*$', re.M)


# ------------------------------------------------------------------ environment
# os.environ's own mapping (POSIX: bytes keys and values), which os.environ[...] = and
# monkeypatch.setenv update in place: a lookup there takes ~0.1 us, os.environ.get ~1 us, and
# the call path reads a few switches on every call.
_ENV_DATA = getattr(os.environ, "_data", None) if os.name == "posix" else None
_ENV_KEYS: dict[str, Any] = {}


def env(name: str, default: str) -> str:
    """``os.environ.get(name, default)``, read on every call (a change takes effect at once)."""
    if not isinstance(_ENV_DATA, dict):  # pragma: no cover - other platforms
        value = os.environ.get(name, default)
    else:
        key = _ENV_KEYS.get(name)
        if key is None:
            key = _ENV_KEYS[name] = os.environ.encodekey(name)
        raw = _ENV_DATA.get(key)
        value = default if raw is None else os.environ.decodevalue(raw)
    rec = getattr(_recording, "rec", None)
    if rec is not None:
        rec.env.setdefault((name, default), value)
    return value


class Recording:
    """What one call did (:func:`recording`): its launches through :func:`launch` (program, name,
    global size, local size, arguments), the switches it read through :func:`env` ((name,
    default) -> value) and the workspaces it held (``WorkspacePool.hold``: pool, bytes, buffer)."""

    def __init__(self) -> None:
        self.launches: list[tuple[Any, str, tuple, tuple | None, tuple]] = []
        self.env: dict[tuple[str, str], str] = {}
        self.holds: list[tuple[Any, int, Any]] = []


_recording = threading.local()


class recording:
    """``with recording() as rec:`` records this thread's launches, switches and workspaces into
    ``rec`` (a :class:`Recording`) while the block runs; what a kernel's replayed calls repeat."""

    def __enter__(self) -> Recording:
        self.rec = Recording()
        self.outer = getattr(_recording, "rec", None)
        _recording.rec = self.rec
        return self.rec

    def __exit__(self, *exc: object) -> None:
        _recording.rec = outer = self.outer
        if outer is not None:  # a recording within another: the outer one gets it all too
            outer.launches.extend(self.rec.launches)
            for key, value in self.rec.env.items():
                outer.env.setdefault(key, value)
            outer.holds.extend(self.rec.holds)


def recorder() -> Recording | None:
    """This thread's :class:`Recording` in progress, or None."""
    return getattr(_recording, "rec", None)


# ------------------------------------------------------------------ errors
def status_name(code: int) -> str:
    """The name of an OpenCL status code (``-5`` -> ``CL_OUT_OF_RESOURCES``)."""
    if cl is not None:
        try:
            return "CL_" + cl.status_code.to_string(code)
        except Exception:
            pass
    return f"CL_ERROR({code})"


def device_error(what: str, exc: BaseException) -> BackendError:
    """Wrap a pyopencl error into a BackendError whose message names the status code."""
    code = getattr(exc, "code", None)
    if code is None and exc.args and hasattr(exc.args[0], "code"):
        code = exc.args[0].code()
    name = status_name(code) if isinstance(code, int) else type(exc).__name__
    return BackendError(f"{what} failed with {name}: {exc}")


# ------------------------------------------------------------------ kernels
def kernels_dir() -> Path:
    """The folder of the OpenCL sources: clconv/kernels_cl when installed, kernels_cl/ in a checkout.

    Found by path, not through ``importlib.resources``: kernels_cl holds no Python and is a
    namespace package, for which ``resources.files`` returns a multiplexed path on some Python
    versions (3.12's names no folder), and the OpenCL compiler needs a real folder to include
    from anyway."""
    here = Path(__file__).resolve()
    for path in (here.parents[2] / "kernels_cl", here.parents[3] / "kernels_cl"):
        if (path / "common.h").exists():
            return path
    raise BackendError("the OpenCL kernel sources (clconv.kernels_cl) are missing from this install")


@lru_cache(maxsize=None)
def load_source(name: str) -> str:
    """A kernel file with its ``#include "..."`` headers inlined (each header once)."""
    root = kernels_dir()
    seen: set[str] = set()

    def expand(fname: str) -> str:
        path = root / fname
        if not path.exists():
            raise BuildError(f"kernel source {fname} not found in {root}", source=fname)
        text = path.read_text()

        def sub(m: re.Match[str]) -> str:
            inc = m.group(1)
            if inc in seen:
                return f"/* {inc} already included */"
            seen.add(inc)
            return f"/* begin {inc} */\n{expand(inc)}\n/* end {inc} */"

        return _INCLUDE_RE.sub(sub, text)

    return expand(name)


# ------------------------------------------------------------------ queues
#: Every queue clconv enqueued work on (its devices' own, and those of pyopencl inputs), by
#: handle; kept (like WorkspacePool's) so that :func:`finish_queues` can wait for them.
_used_queues: dict[int, Any] = {}


def note_queue(queue: Any) -> None:
    """Remember a queue clconv enqueues work on (waited for at exit: :func:`finish_queues`)."""
    if queue.int_ptr not in _used_queues:
        _used_queues[queue.int_ptr] = queue


@atexit.register
def finish_queues() -> None:
    """Wait for the work clconv enqueued before the process exits.

    pyopencl results are returned while their kernels are still queued. PoCL (3.1) compiles
    a kernel's work-group function on its own thread when the command first runs; a process
    that exits with such a command in flight unloads LLVM under that thread and dies with
    SIGSEGV after its last line (seen with cold caches in most runs of a script that never
    read its results back). Registered after pyopencl's own exit handlers, so it runs first.
    """
    for queue in list(_used_queues.values()):
        try:
            queue.finish()
        except Exception:  # a broken queue at exit: nothing left to do for it
            pass


# ------------------------------------------------------------------ devices
@dataclass(eq=False)
class OpenCLDevice(Device):
    """A clconv Device backed by a ``pyopencl.Device``; context and queue made on first use."""

    platform_index: int = 0
    device_index: int = 0
    cl_device: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _context: Any = field(default=None, repr=False)
    _queue: Any = field(default=None, repr=False)
    _probe: str | None = field(default=None, repr=False)
    _host_coherent: bool | None = field(default=None, repr=False)

    @property
    def context(self) -> Any:
        with self._lock:
            if self._context is None:
                try:
                    self._context = cl.Context([self.cl_device])
                except cl.Error as exc:
                    raise device_error(f"creating a context on {self.id}", exc) from exc
            return self._context

    @property
    def queue(self) -> Any:
        q = self._queue
        if q is not None:  # set once, never replaced: no lock on the hot path
            return q
        ctx = self.context
        with self._lock:
            if self._queue is None:
                self._queue = cl.CommandQueue(ctx, self.cl_device)
                note_queue(self._queue)
            return self._queue

    def owns(self, array: Any) -> bool:
        queue = getattr(array, "queue", None)
        if queue is None:
            return False
        try:
            return queue.device.int_ptr == self.cl_device.int_ptr
        except Exception:
            return False

    def fingerprint(self) -> str:
        x = self.extra
        return "|".join(
            str(v)
            for v in (
                "opencl", x.get("platform"), x.get("platform_version"), self.name, self.vendor,
                self.driver, x.get("opencl_version"),
            )
        )

    def probe(self) -> str:
        """Build and run a tiny kernel once per process; '' when the device works, else why not.

        Some drivers enumerate devices they cannot compile for (PoCL 3.0 from pip
        on CPUs newer than its LLVM 14: "unknown target CPU 'generic'"). The
        dispatcher rejects such a device with this reason instead of failing later.
        """
        with self._lock:
            if self._probe is not None:
                return self._probe
        reason = ""
        try:
            ctx = self.context
            queue = cl.CommandQueue(ctx, self.cl_device)
            prog = cl.Program(ctx, "__kernel void clconv_probe(__global int* a) { a[get_global_id(0)] += 41; }")
            prog.build(cache_dir=False)
            host = np.ones(4, dtype=np.int32)
            buf = cl_array.to_device(queue, host)
            prog.clconv_probe(queue, (4,), None, buf.data)
            if not np.array_equal(buf.get(queue), host + 41):
                reason = "a probe kernel returned wrong results"
        except Exception as exc:
            log = str(exc).strip().splitlines()
            detail = next((l.strip() for l in log if l.strip().startswith("error")), log[-1] if log else "")
            reason = f"cannot build or run kernels ({type(exc).__name__}: {detail})"
        with self._lock:
            self._probe = reason
        return reason

    def problem(self) -> str:
        return self.probe()

    @property
    def local_mem_bytes(self) -> int:
        return int(self.extra.get("local_mem_bytes", 0))

    @property
    def max_work_group_size(self) -> int:
        return int(self.extra.get("max_work_group_size", 1))

    @property
    def max_alloc_bytes(self) -> int:
        return int(self.extra.get("max_alloc_bytes", 0))

    @property
    def zero_copy_align(self) -> int:
        """Byte alignment at which this device's kernels read and write host memory in place
        (``CL_MEM_USE_HOST_PTR``), or 0 where host arrays are copied to device buffers.

        CPU devices share the host's memory: a buffer over a NumPy array is that array, so
        a call needs no upload or download copies, only a map of the output (a no-op there)
        to meet OpenCL's coherence rules. The alignment is the device's base-address
        alignment (at least 64 bytes, the widest vector a kernel loads through a cast
        pointer). GPUs, integrated ones included, keep device buffers (a driver may copy
        a host pointer behind the scenes on every launch). ``CLCONV_ZERO_COPY=0`` turns
        it off.
        """
        raw = env("CLCONV_ZERO_COPY", "1")
        memo = self.__dict__.get("_zero_copy")
        if memo is None or memo[0] != raw:  # read on every call: parsed once per value
            on = self.kind == "cpu" and raw.strip().lower() not in _OFF
            memo = self.__dict__["_zero_copy"] = (raw, max(64, int(self.extra.get("mem_base_addr_align_bytes", 128))) if on else 0)
        return memo[1]

    @property
    def host_coherent(self) -> bool:
        """Whether kernel writes to a ``CL_MEM_USE_HOST_PTR`` buffer reach the host array by the
        time the queue finishes, without a map (probed once: a kernel writes such a buffer).

        OpenCL only promises that after mapping the buffer; a driver that runs kernels on
        the host pointer itself (PoCL's CPU device) needs no map, and skipping it saves one
        enqueue per call (~12 us on PoCL). A driver that keeps its own copy (Oclgrind) fails
        the probe and keeps the map.
        """
        known = self._host_coherent
        if known is not None:  # probed once, never changed: no lock on the hot path
            return known
        ok = False
        try:
            ctx = self.context
            queue = cl.CommandQueue(ctx, self.cl_device)
            prog = cl.Program(ctx, "__kernel void clconv_coherent(__global int* a) { a[get_global_id(0)] += 7; }")
            prog.build(cache_dir=False)
            raw = np.zeros(4096 // 4 + 64, dtype=np.int32)
            host = raw[(-raw.ctypes.data % 256) // 4:][:1024]
            host[...] = np.arange(1024, dtype=np.int32)
            buf = cl.Buffer(ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.USE_HOST_PTR, hostbuf=host)
            prog.clconv_coherent(queue, (1024,), None, buf)
            queue.finish()
            ok = bool(np.array_equal(host, np.arange(1024, dtype=np.int32) + 7))
            del buf
        except Exception:
            ok = False
        with self._lock:
            self._host_coherent = ok
        return ok


_KIND = {"GPU": "gpu", "CPU": "cpu", "ACCELERATOR": "accelerator", "CUSTOM": "accelerator"}


def _kind(dev: Any) -> str:
    t = dev.type
    for flag, name in (
        (cl.device_type.GPU, "gpu"),
        (cl.device_type.ACCELERATOR, "accelerator"),
        (cl.device_type.CPU, "cpu"),
    ):
        if t & flag:
            return name
    return "accelerator"


def _safe(fn: Any, default: Any = None) -> Any:
    try:
        return fn()
    except Exception:
        return default


def default_pocl_affinity(environ: Any = None) -> bool:
    """Ask PoCL to pin its CPU worker threads, thread i to CPU i, unless the caller chose.

    Unpinned, the Linux scheduler often leaves both of PoCL's worker threads on one
    CPU of a 2-CPU machine for seconds at a time: each kernel then runs on half the
    machine (measured on PoCL 3.1, 2 vCPUs: ResNet-50's 1x1-56 layer 0.53 ms in most
    processes, 0.30 ms in the others; pinned, 0.30-0.32 ms in every process, and no
    layer slower; ``python benchmarks/process_modes.py``). PoCL reads ``POCL_AFFINITY``
    when it starts its threads, on the process's first OpenCL platform query, so this
    runs before clconv's first one; it changes nothing if the process has already
    started PoCL. Set only when the process may run on every online CPU, numbered
    0..n-1: PoCL pins thread i to CPU i and aborts if that CPU is not allowed (a
    cgroup cpuset, a container given CPUs 4-7). An explicit ``POCL_AFFINITY`` in the
    environment, 0 or 1, is always left as it is. Returns whether it was set.
    """
    env = os.environ if environ is None else environ
    if "POCL_AFFINITY" in env or not hasattr(os, "sched_getaffinity"):
        return False
    try:
        allowed = os.sched_getaffinity(0)
    except OSError:
        return False
    count = os.cpu_count() or 0
    if count < 2 or allowed != set(range(count)):
        return False
    env["POCL_AFFINITY"] = "1"
    return True


#: PoCL drivers whose devices are CPUs that POCL_DEVICES="basic pthread" reproduces; a driver
#: library of any other name (cuda, level0, almaif, remote, tbb, ...) makes clconv leave
#: POCL_DEVICES alone, since naming drivers there drops every driver not named.
_POCL_CPU_DRIVERS = {"basic", "pthread"}


def _pocl_driver_dirs(environ: Any) -> list[Path]:
    """Folders where an installed PoCL keeps its driver libraries (libpocl-devices-*.so):
    ``pocl/`` next to each PoCL library an ICD file names, and in the usual library folders.
    PoCL builds without such a folder (pip's wheel) have only their built-in CPU drivers."""
    libdirs: list[Path] = []
    vendors = [Path("/etc/OpenCL/vendors")]
    for part in environ.get("OCL_ICD_VENDORS", "").split(os.pathsep):
        if part:
            vendors.append(Path(part))
    for v in vendors:
        files = [v] if v.is_file() else sorted(v.glob("*.icd")) if v.is_dir() else []
        for f in files:
            try:
                lib = Path(f.read_text().strip())
            except OSError:
                continue
            if "pocl" in lib.name.lower() and lib.is_absolute():
                libdirs.append(lib.parent)
    for pattern in ("/usr/lib/*-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib", "/usr/local/lib64"):
        libdirs.extend(Path(p) for p in sorted(Path("/").glob(pattern.lstrip("/"))))
    for prefix in (environ.get("CONDA_PREFIX"), sys.prefix):
        if prefix:
            libdirs.append(Path(prefix) / "lib")
    return [d / "pocl" for d in dict.fromkeys(libdirs) if (d / "pocl").is_dir()]


def default_pocl_devices(environ: Any = None, driver_dirs: Sequence[Path] | None = None) -> bool:
    """Ask PoCL for its ``basic`` device next to its ``pthread`` one, unless the caller chose.

    PoCL's multi-threaded CPU device hands each kernel to worker threads and waits for
    them: ~30 us per launch on a 2-vCPU VM, most of a small convolution's time. Its
    ``basic`` device runs kernels on the calling thread: ~1 us per launch, one core. With
    both, the dispatcher sends each convolution to the faster one (small layers to
    ``basic``, measured 6-12 us per call against 33-76 us). PoCL enables ``basic`` only when
    ``POCL_DEVICES`` names it, and naming drivers there drops those not named, so this sets
    ``POCL_DEVICES="basic pthread"`` only where PoCL has no other driver installed (any
    ``libpocl-devices-*.so`` but these two leaves it unset), never over the caller's
    ``POCL_DEVICES``, and not with ``CLCONV_POCL_BASIC=0``. Like ``POCL_AFFINITY``, PoCL
    reads it once, at the process's first platform query. Returns whether it was set.
    """
    env = os.environ if environ is None else environ
    if "POCL_DEVICES" in env or env.get("CLCONV_POCL_BASIC", "1").strip().lower() in _OFF:
        return False
    for d in _pocl_driver_dirs(env) if driver_dirs is None else driver_dirs:
        for lib in Path(d).glob("libpocl-devices-*.so*"):
            if lib.name[len("libpocl-devices-"):].split(".")[0] not in _POCL_CPU_DRIVERS:
                return False
    env["POCL_DEVICES"] = "basic pthread"
    return True


def is_pocl_basic(dev: Any) -> bool:
    """A PoCL ``basic`` device (runs kernels on the thread that enqueues them)."""
    return "pocl" in str(_safe(lambda: dev.platform.version, "")).lower() and str(
        _safe(lambda: dev.name, "")
    ).startswith("basic")


def enumerate_devices() -> tuple[list[OpenCLDevice], list[str]]:
    """Every device of every platform, and a list of problems met while enumerating."""
    if cl is None:
        return [], [f"pyopencl could not be imported: {_IMPORT_ERROR}"]
    problems: list[str] = []
    default_pocl_affinity()
    default_pocl_devices()
    try:
        platforms = cl.get_platforms()
    except Exception as exc:  # no ICD loader or no platform: simply no devices
        return [], [f"no OpenCL platform: {exc}"]
    out: list[OpenCLDevice] = []
    for p_idx, plat in enumerate(platforms):
        try:
            devs = plat.get_devices()
        except Exception as exc:
            problems.append(f"platform {p_idx} ({_safe(lambda: plat.name, '?')}): {exc}")
            continue
        # PoCL lists its basic device first: it goes last, so that a platform's device
        # indices do not depend on whether it is enabled (opencl:0:0 stays pthread).
        devs = sorted(devs, key=is_pocl_basic)
        for d_idx, dev in enumerate(devs):
            ext = set(_safe(lambda: dev.extensions, "").split())
            fp64 = "cl_khr_fp64" in ext or bool(_safe(lambda: dev.double_fp_config, 0))
            fp16 = "cl_khr_fp16" in ext
            extra = {
                "platform": _safe(lambda: plat.name, ""),
                "platform_version": _safe(lambda: plat.version, ""),
                "platform_vendor": _safe(lambda: plat.vendor, ""),
                "opencl_version": _safe(lambda: dev.version, ""),
                "opencl_c_version": _safe(lambda: dev.opencl_c_version, ""),
                "extensions": sorted(ext),
                "max_clock_mhz": _safe(lambda: dev.max_clock_frequency, 0),
                "max_work_group_size": _safe(lambda: dev.max_work_group_size, 1),
                "max_work_item_sizes": list(_safe(lambda: dev.max_work_item_sizes, [1, 1, 1])),
                "local_mem_bytes": _safe(lambda: dev.local_mem_size, 0),
                "local_mem_type": "local" if _safe(lambda: dev.local_mem_type, 1) == 1 else "global",
                "max_alloc_bytes": _safe(lambda: dev.max_mem_alloc_size, 0),
                "global_mem_cache_bytes": _safe(lambda: dev.global_mem_cache_size, 0),
                "preferred_vector_width_float": _safe(lambda: dev.preferred_vector_width_float, 1),
                "native_vector_width_float": _safe(lambda: dev.native_vector_width_float, 1),
                "address_bits": _safe(lambda: dev.address_bits, 64),
                "host_unified_memory": bool(_safe(lambda: dev.host_unified_memory, False)),
                "mem_base_addr_align_bytes": int(_safe(lambda: dev.mem_base_addr_align, 1024)) // 8,
                "runs_on_caller_thread": is_pocl_basic(dev),
            }
            out.append(
                OpenCLDevice(
                    id=f"opencl:{p_idx}:{d_idx}",
                    backend="opencl",
                    name=str(_safe(lambda: dev.name, "?")).strip(),
                    kind=_kind(dev),
                    vendor=str(_safe(lambda: dev.vendor, "")).strip(),
                    driver=str(_safe(lambda: dev.driver_version, "")).strip(),
                    memory_bytes=int(_safe(lambda: dev.global_mem_size, 0)),
                    compute_units=int(_safe(lambda: dev.max_compute_units, 1)),
                    fp64=fp64,
                    fp16=fp16,
                    extra=extra,
                    platform_index=p_idx,
                    device_index=d_idx,
                    cl_device=dev,
                )
            )
    return out, problems


# ------------------------------------------------------------------ builds
def cache_root() -> Path:
    """The clconv cache folder (``CLCONV_CACHE_DIR`` overrides the platform default)."""
    from ...tuning import cache_dir

    return cache_dir()


@lru_cache(maxsize=None)
def sources_hash() -> str:
    """A hash of every kernel source and header: tuning results are keyed by it."""
    h = hashlib.sha256()
    root = kernels_dir()
    for path in sorted(root.glob("*.cl")) + sorted(root.glob("*.h")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _disk_cache_enabled() -> bool:
    value = os.environ.get("CLCONV_KERNEL_CACHE", "1")
    if value not in ("0", "1"):
        raise UnsupportedError(f"CLCONV_KERNEL_CACHE={value!r} is not accepted: give 0 or 1")
    return value == "1"


def build_key(source: str, options: Sequence[str], device: OpenCLDevice) -> str:
    """What the disk cache is keyed by: everything that changes the binary."""
    h = hashlib.sha256()
    for part in (
        source,
        "\0".join(options),
        device.extra.get("platform", ""),
        device.extra.get("platform_version", ""),
        device.name,
        device.vendor,
        device.driver,
        device.extra.get("opencl_version", ""),
        __version__,
    ):
        h.update(str(part).encode())
        h.update(b"\1")
    return h.hexdigest()


_programs: dict[tuple[int, str], Any] = {}
_programs_lock = threading.Lock()


def check_capabilities(device: OpenCLDevice, *, fp64: bool = False, local_mem: int = 0, fp16: bool = False) -> None:
    """Raise UnsupportedError naming the missing capability, before any build."""
    if fp64 and not device.fp64:
        raise UnsupportedError(f"device {device.id} ({device.name}) lacks cl_khr_fp64, needed for float64")
    if fp16 and not device.fp16:
        raise UnsupportedError(f"device {device.id} ({device.name}) lacks cl_khr_fp16, needed for half arithmetic")
    if local_mem and local_mem > device.local_mem_bytes:
        raise UnsupportedError(
            f"device {device.id} ({device.name}) has {device.local_mem_bytes} bytes of local memory; "
            f"this kernel needs {local_mem}"
        )


def build_program(
    device: OpenCLDevice,
    filename: str,
    defines: dict[str, Any] | None = None,
    *,
    context: Any = None,
    extra_options: Sequence[str] = (),
    fp64: bool = False,
) -> Any:
    """Build (or fetch from cache) the program of ``kernels_cl/<filename>`` with ``-D`` defines.

    ``context`` defaults to the device's own; pass the context of user arrays
    to run on their data. Cached in memory per context, and on disk as a binary.
    """
    check_capabilities(device, fp64=fp64)
    ctx = context if context is not None else device.context
    options = [f"-D{k}={v}" for k, v in sorted((defines or {}).items())] + list(extra_options)
    options += os.environ.get("CLCONV_BUILD_OPTIONS", "").split()
    source = load_source(filename)
    if fp64:
        source = "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n" + source
    key = build_key(source, options, device)
    mem_key = (ctx.int_ptr, key)
    with _programs_lock:
        prog = _programs.get(mem_key)
    if prog is not None:
        return prog
    prog = _load_binary(ctx, device, key, options)
    if prog is None:
        prog = _build_source(ctx, device, source, options, filename)
        _store_binary(prog, device, key)
    with _programs_lock:
        _programs[mem_key] = prog
    return prog


def _binary_path(key: str) -> Path:
    return cache_root() / "kernels" / key[:2] / f"{key}.bin"


def _load_binary(ctx: Any, device: OpenCLDevice, key: str, options: list[str]) -> Any:
    if not _disk_cache_enabled():
        return None
    path = _binary_path(key)
    try:
        binary = path.read_bytes()
    except OSError:
        return None
    try:
        prog = cl.Program(ctx, [device.cl_device], [binary])
        # pyopencl's Kernel() looks up the program's `_source`; a program made from a binary
        # has none, and the lookup then falls through to clCreateKernel(prog, "_source"),
        # which fails (harmlessly, but Oclgrind's API checker reports it).
        prog._source = None
        prog.build(options=options)
        return prog
    except Exception:
        try:  # a stale or corrupt binary: rebuild from source
            path.unlink()
        except OSError:
            pass
        return None


def _store_binary(prog: Any, device: OpenCLDevice, key: str) -> None:
    if not _disk_cache_enabled():
        return
    try:
        binaries = prog.get_info(cl.program_info.BINARIES)
        if not binaries or not binaries[0]:
            return
        path = _binary_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(bytes(binaries[0]))
        os.replace(tmp, path)  # atomic: concurrent processes never see a partial file
    except Exception:
        pass  # the cache is an optimization; never fail a call because of it


def _build_source(ctx: Any, device: OpenCLDevice, source: str, options: list[str], filename: str) -> Any:
    try:
        prog = cl.Program(ctx, source)
        prog.build(options=options, devices=[device.cl_device], cache_dir=False)
        return prog
    except cl.Error as exc:
        log = ""
        try:
            log = prog.get_build_info(device.cl_device, cl.program_build_info.LOG)  # type: ignore[possibly-undefined]
        except Exception:
            pass
        if not log:
            log = str(exc)
        code = getattr(exc, "code", None)
        name = status_name(code) if isinstance(code, int) else "CL_BUILD_PROGRAM_FAILURE"
        raise BuildError(
            f"building {filename} for {device.id} ({device.name}) failed with {name}",
            log=log,
            source=filename,
            options=tuple(options),
        ) from exc


def clear_memory_cache() -> None:
    with _programs_lock:
        _programs.clear()
        _kernels.clear()


_kernels: dict[tuple[int, str], tuple[Any, threading.Lock]] = {}


def launch(queue: Any, program: Any, name: str, global_size: Sequence[int], local_size: Sequence[int] | None, *args: Any) -> Any:
    """Set arguments and enqueue kernel ``name`` of ``program``.

    Kernel objects are made once per program and reused (making one per call is
    costly); a kernel's arguments are shared state, so setting them and
    enqueueing happen under a per-kernel lock.
    """
    knl, lock = kernel_object(program, name, args)
    gsize, lsize = tuple(global_size), None if local_size is None else tuple(local_size)
    rec = getattr(_recording, "rec", None)
    if rec is not None:
        rec.launches.append((program, name, gsize, lsize, args))
    with lock:
        knl.set_args(*args)
        return cl.enqueue_nd_range_kernel(queue, knl, gsize, lsize)


def kernel_object(program: Any, name: str, args: Sequence[Any]) -> tuple[Any, threading.Lock]:
    """The shared kernel object ``name`` of ``program`` and the lock that guards its arguments
    (made on first use, with scalar argument types taken from ``args``)."""
    key = (program.int_ptr, name)
    with _programs_lock:
        entry = _kernels.get(key)
        if entry is None:
            knl = cl.Kernel(program, name)
            # Declared scalar types make set_args ~100x cheaper (pyopencl otherwise
            # inspects each scalar on every call: ~5 us per argument).
            knl.set_scalar_arg_dtypes([a.dtype if isinstance(a, np.generic) else None for a in args])
            entry = (knl, threading.Lock())
            _kernels[key] = entry
    return entry


# ------------------------------------------------------------------ data
CL_TYPE = {"float16": "half", "float32": "float", "float64": "double"}


def dtype_defines(dtype: str) -> dict[str, Any]:
    """Macros that select storage and accumulation types (see kernels_cl/common.h)."""
    return {"CLCONV_DTYPE": {"float16": 16, "float32": 32, "float64": 64}[dtype]}


def host_array(x: Any, dtype: str) -> np.ndarray:
    """A C-contiguous NumPy copy-or-view of ``x`` in ``dtype`` (never the caller's buffer to write)."""
    return np.ascontiguousarray(x, dtype=np.dtype(dtype))
