"""Shared machinery of the OpenCL algorithms: support checks, data movement, launches.

An algorithm module subclasses :class:`OpenCLAlgorithm` (its ``supports``
starts from :meth:`OpenCLAlgorithm.common_support`) and returns an
:class:`OpenCLKernel` subclass whose :meth:`OpenCLKernel.run` enqueues the
work on device arrays. This class does the rest: NumPy in gives NumPy out;
pyopencl arrays in give a pyopencl array out on the same queue, with no host
round trip; N = 0 launches nothing.
"""

from __future__ import annotations

import ctypes
import math
import threading
from abc import abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ...backend import Algorithm, Device, Kernel, Support, first_failure
from ...costmodel import Cost, io_bytes
from ...errors import ConvValueError, UnsupportedError
from ...spec import ConvSpec, is_device_array
from . import runtime
from .runtime import OpenCLDevice, cl, cl_array

INT32_MAX = 2**31 - 1
_I32_0 = np.int32(0)

#: Local work size of 1-D launches when an algorithm does not choose its own.
DEFAULT_LOCAL = 64


def spatial3(values: tuple[int, ...], fill: int) -> tuple[int, int, int]:
    """Pad a per-dim tuple to (D, H, W), the leading missing dims filled with ``fill``."""
    return tuple([fill] * (3 - len(values)) + list(values))  # type: ignore[return-value]


def round_up(n: int, m: int) -> int:
    return -(-n // m) * m


class OpenCLAlgorithm(Algorithm):
    """Base of the OpenCL algorithms."""

    #: Enqueues a call with host arrays adds around the kernels: input and weight
    #: uploads and the output download (each costs about one launch on every device).
    HOST_TRANSFER_LAUNCHES = 3

    def host_launches(self, device: Device) -> int:
        """Enqueues a call with NumPy arrays adds around the kernels on ``device``: the
        uploads and the download, or none where kernels work on host memory in place
        (``OpenCLDevice.zero_copy_align``: the final wait is part of a launch's latency,
        which is what a device profile's ``launch_us`` measures)."""
        return 0 if getattr(device, "zero_copy_align", 0) else self.HOST_TRANSFER_LAUNCHES

    def cost(self, spec: ConvSpec, device: Device) -> Cost:
        return Cost(spec.flops, io_bytes(spec), 1 + self.host_launches(device), self.efficiency)

    def common_support(self, spec: ConvSpec, device: Device) -> Support:
        """Checks every OpenCL algorithm shares: device type, capabilities, 32-bit indexing."""
        biggest = max(math.prod(spec.input_shape), math.prod(spec.output_shape), math.prod(spec.weight_shape))
        reach = _largest_param(spec)
        if not isinstance(device, OpenCLDevice):
            return Support.no("not an OpenCL device")
        broken = device.probe()
        return first_failure(
            (bool(broken), f"device {broken}", "capability"),
            (spec.dtype == "float64" and not device.fp64,
             "device lacks cl_khr_fp64, needed for float64", "capability"),
            (max(spec.nbytes("input"), spec.nbytes("output"), spec.nbytes("weight"))
             > getattr(device, "max_alloc_bytes", 0) > 0,
             "an array exceeds the device's max allocation size", "memory"),
            (biggest > INT32_MAX, f"an array has {biggest} elements; kernels index with 32-bit ints", "size"),
            (reach > INT32_MAX,
             f"a stride, dilation or padding reaches {reach}; kernels index with 32-bit ints", "size"),
        )


def _largest_param(spec: ConvSpec) -> int:
    """The largest index distance a kernel works out from the spec's parameters (strides,
    dilations, paddings, dilated kernel spans, padded or stretched input extents)."""
    spans = [d * (k - 1) + 1 for d, k in zip(spec.dilation, spec.kernel)]
    extents = [n * s + b + a + sp for n, s, b, a, sp in
               zip(spec.in_size, spec.stride, spec.pad_before, spec.pad_after, spans)]
    return max(*spec.stride, *spec.dilation, *spec.pad_before, *spec.pad_after, *spans, *extents)


class HostView:
    """A host array as a device buffer (``CL_MEM_USE_HOST_PTR``), with the attributes of a
    C-contiguous pyopencl array that :meth:`OpenCLKernel.run` uses (``base_data``, ``data``,
    ``offset``, ``shape``, ``dtype``, ``size``, ``nbytes``, ``queue``, ``context``). Making
    one costs ~0.3 us, a ``pyopencl.array.Array`` ~10 us, and a call makes four."""

    __slots__ = ("queue", "data", "host", "shape", "dtype", "offset")

    def __init__(self, queue: Any, buf: Any, host: np.ndarray, offset: int = 0):
        self.queue, self.data, self.host = queue, buf, host
        self.shape, self.dtype = host.shape, host.dtype
        self.offset = offset  # bytes from the buffer's start to host's first element

    @property
    def base_data(self) -> Any:
        return self.data

    @property
    def context(self) -> Any:
        return self.queue.context

    @property
    def size(self) -> int:
        return self.host.size

    @property
    def nbytes(self) -> int:
        return self.host.nbytes


def host_address(arr: np.ndarray) -> int:
    """The address of a C-contiguous array's first byte (a quarter of ``arr.ctypes.data``'s
    0.8 us for a writable array; read-only ones take that path)."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(arr))
    except (TypeError, ValueError, BufferError):
        return arr.ctypes.data


def aligned_empty(shape: tuple[int, ...], dtype: Any, align: int) -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts at a multiple of ``align`` bytes
    (a slice of a slightly larger array: ~1 us, where ``np.ndarray(buffer=...)`` took 1.5)."""
    dtype = np.dtype(dtype)
    n = math.prod(shape)
    if align % dtype.itemsize:
        raw = np.empty(max(n * dtype.itemsize, 1) + align, dtype=np.uint8)
        return np.ndarray(shape, dtype, buffer=raw, offset=-host_address(raw) % align)
    raw = np.empty(n + align // dtype.itemsize, dtype)
    start = (-host_address(raw) % align) // dtype.itemsize
    return raw[start:start + n].reshape(shape)


def pocl_cpu(device: Device) -> bool:
    """A CPU device of PoCL: where the CPU-tuned kernel forms (prefetching, Winograd's fused
    kernel and its blocks) were measured."""
    extra = getattr(device, "extra", {}) or {}
    return device.kind == "cpu" and "pocl" in str(extra.get("platform_version", "")).lower()


def zero_copy_io(spec: ConvSpec, ctx: Any, align: int) -> Callable[[Any], tuple[Any, int, np.ndarray, Any] | None]:
    """For the fast paths of repeated host calls on a host-coherent zero-copy device (every
    constant worked out here once): ``io(x)`` gives (a host-pointer buffer over x, x's element
    offset in it, a new output array aligned to ``align``, a host-pointer buffer over that), or
    None where x is not a writable, C-contiguous NumPy array of the spec's input shape and
    dtype (the general path then takes the call, and makes every check)."""
    dtype = np.dtype(spec.dtype)
    itemsize = dtype.itemsize
    in_shape, out_shape = spec.input_shape, spec.output_shape
    # a C-contiguous array's strides (any other layout takes the general path)
    in_strides = tuple(itemsize * math.prod(in_shape[i + 1:]) for i in range(len(in_shape)))
    out_n, pad = math.prod(out_shape), align // itemsize  # zero_copy_align: a multiple of 8
    ro = cl.mem_flags.READ_ONLY | cl.mem_flags.USE_HOST_PTR
    rw = cl.mem_flags.READ_WRITE | cl.mem_flags.USE_HOST_PTR
    buffer, from_buffer, addressof = cl.Buffer, ctypes.c_char.from_buffer, ctypes.addressof

    def io(x: Any) -> tuple[Any, int, np.ndarray, Any] | None:
        if type(x) is not np.ndarray or x.dtype != dtype or x.shape != in_shape or x.strides != in_strides:
            return None
        try:
            addr = addressof(from_buffer(x))
        except (TypeError, ValueError, BufferError):  # read-only: the general path
            return None
        placed = host_pointer_buffer(ctx, ro, x, addr, align)
        if placed is None:
            return None
        raw = np.empty(out_n + pad, dtype)  # aligned_empty, its constants worked out above
        start = (-addressof(from_buffer(raw)) % align) // itemsize
        result = raw[start:start + out_n].reshape(out_shape)
        return placed[0], placed[1] // itemsize, result, buffer(ctx, rw, hostbuf=result)

    return io


def host_pointer_buffer(ctx: Any, flags: int, arr: np.ndarray, addr: int, align: int) -> tuple[Any, int] | None:
    """(buffer, skew in bytes) of a C-contiguous host array at ``addr`` as a ``USE_HOST_PTR``
    buffer that starts at a multiple of ``align``: the array itself when aligned, else the
    aligned address below it (same page, never read or written: kernels take the element
    offset ``skew // itemsize``). None when ``addr`` is not a multiple of the itemsize.

    NumPy places large arrays 16 or 64 bytes past a 128-byte boundary, so without this most
    inputs were copied on every call (MobileNetV2's 1x1 layer, 14 MB input at batch 8: 1.07
    ms, 0.50 ms in place). Only for devices whose kernels run on the host pointer itself
    (``OpenCLDevice.host_coherent``): a driver that copied the buffer would copy bytes that
    are not the array's."""
    skew = addr % align
    if skew == 0:
        return cl.Buffer(ctx, flags, hostbuf=arr), 0
    if skew % arr.itemsize:
        return None
    return cl.Buffer(ctx, flags, hostbuf=(ctypes.c_char * (arr.nbytes + skew)).from_address(addr - skew)), skew


def _device_array(name: str, arr: Any, ctx: Any, queue: Any, dtype: str) -> Any:
    """``arr`` as a C-contiguous pyopencl array in ``ctx`` (uploading NumPy data)."""
    if is_device_array(arr):
        if arr.context.int_ptr != ctx.int_ptr:
            raise UnsupportedError(f"{name} is a pyopencl array in another context than the input")
        if not arr.flags.c_contiguous:
            raise ConvValueError(f"{name} is a non-contiguous pyopencl array: pass a C-contiguous array")
        return arr
    host = runtime.host_array(arr, dtype)
    return cl_array.to_device(queue, host)


def _overlap(a: Any, b: Any) -> bool:
    """Whether two C-contiguous pyopencl arrays share bytes of one buffer (kernels that read
    one while writing the other would read what they wrote)."""
    if not is_device_array(b) or a.base_data.int_ptr != b.base_data.int_ptr:
        return False
    return a.offset < b.offset + b.nbytes and b.offset < a.offset + a.nbytes


class WorkspacePool:
    """One growing workspace buffer per queue, shared by every kernel of one algorithm instance.

    Keyed by queue, not by context: an in-order queue runs the kernels of successive calls
    one after another, so a buffer reused on one queue never overlaps itself, whichever
    spec (kernel object) uses it; two queues of one context may run concurrently. A call
    holds the queue's lock while it enqueues, so that two threads sharing a queue cannot
    interleave their launches. A bigger need replaces the buffer (OpenCL frees the old one
    once the commands using it finish). The pool keeps a reference to each queue it saw.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, list[Any]] = {}  # queue.int_ptr -> [queue, lock, buffer]

    @contextmanager
    def hold(self, queue: Any, nbytes: int) -> Iterator[Any]:
        with self._lock:
            entry = self._entries.setdefault(queue.int_ptr, [queue, threading.Lock(), None])
        with entry[1]:
            if entry[2] is None or entry[2].size < nbytes:
                entry[2] = None
                entry[2] = cl.Buffer(queue.context, cl.mem_flags.READ_WRITE, max(nbytes, 64))
            rec = runtime.recorder()
            if rec is not None:
                rec.holds.append((self, nbytes, entry[2]))
            yield entry[2]

    def buffers(self) -> list[Any]:
        """The current buffers (for tests and reports)."""
        with self._lock:
            return [e[2] for e in self._entries.values() if e[2] is not None]


def _arg_setter(knl: Any, w_args: tuple, b_args: tuple, tail: tuple) -> Any:
    """``set(x_buffer, x_offset, y_buffer)``: sets every argument of a one-launch kernel
    (:meth:`OpenCLKernel.launch_buffers`: x, w, b, y with their element offsets, then
    ``tail``), w, b and ``tail`` fixed.

    pyopencl's generated ``set_args`` costs ~1.2 us for a dozen arguments; the two calls
    it is made of (``_set_arg_multi`` for memory objects, ``_set_arg_buf_multi`` for
    packed scalars), with the fixed scalars packed once here, ~0.2. Where this pyopencl
    lacks them, or an argument is of another kind, ``set_args`` it is."""
    fixed_mem: tuple = (2, w_args[0], 4, b_args[0])  # memory objects, None and local memory
    fixed_scalars: tuple = ()
    plain = True
    for i, v in ((3, w_args[1]), (5, b_args[1]), (7, _I32_0), *enumerate(tail, start=8)):
        if isinstance(v, np.generic):
            fixed_scalars += (i, v.tobytes())
        elif v is None or isinstance(v, (cl.MemoryObjectHolder, cl.LocalMemory)):
            fixed_mem += (i, v)
        else:
            plain = False
    if not (plain and hasattr(knl, "_set_arg_multi") and hasattr(knl, "_set_arg_buf_multi")):
        def set_generic(xb: Any, x_off: int, yb: Any) -> None:
            knl.set_args(xb, np.int32(x_off), *w_args, *b_args, yb, _I32_0, *tail)
        return set_generic

    set_mem, set_scalars = knl._set_arg_multi, knl._set_arg_buf_multi
    packed: dict[int, bytes] = {}  # x offset -> its packed bytes (a handful of values)

    def set_packed(xb: Any, x_off: int, yb: Any) -> None:
        off = packed.get(x_off)
        if off is None:
            off = packed[x_off] = np.int32(x_off).tobytes()
        set_mem((0, xb, 6, yb, *fixed_mem))
        set_scalars((1, off, *fixed_scalars))
    return set_packed


class OpenCLKernel(Kernel):
    """Moves data to the device, calls :meth:`run`, and returns the result in the caller's form."""

    device: OpenCLDevice

    #: :meth:`run` is exactly one :meth:`launch_buffers` (direct, direct-blocked, depthwise):
    #: such kernels get the fast path of :meth:`_make_fast` for repeated host calls.
    ONE_LAUNCH = False
    #: :meth:`run` launches through ``runtime.launch`` only, reads the weight and bias where they
    #: are (no prepared copy), depends on nothing but the spec, the kernel's own fixed state,
    #: switches read through ``runtime.env`` and workspaces from ``WorkspacePool.hold``, and
    #: passes x and y only as (buffer, element offset) argument pairs: such kernels get
    #: :meth:`_make_launch_replay`'s fast path for repeated host calls (im2col).
    REPLAYS = False

    def __call__(self, input: Any, weight: Any, bias: Any = None, out: Any = None) -> Any:
        if out is None:
            fast = self.__dict__.get("_fast")
            if fast is not None:
                result = fast(input, weight, bias)
                if result is not None:
                    return result
            device_fast = self.__dict__.get("_device_fast")
            if device_fast is not None:
                result = self._device_call(device_fast, input, weight, bias)
                if result is not None:
                    return result
        return super().__call__(input, weight, bias, out)

    def _device_call(self, state: tuple[Any, ...], x: Any, w: Any, b: Any) -> Any:
        """The fast path of repeated calls with pyopencl arrays and no ``out``, made after a
        first such call in the same context: the same work as the general path (:meth:`run`
        into a new output array on the input's queue), with its checks reduced to comparisons
        with that call's types, shapes, dtype and context, and the output made from a template
        (``pyopencl.array.empty_like``, ~1 us, where ``empty`` takes ~13 us of Python). Returns
        None for anything else: the general path then makes every check and raises the errors.
        A 1x1 layer on PoCL's basic device: 33 us a call before, see benchmarks/RESULTS.md."""
        array_type, ctx_ptr, dtype, template, lock = state
        spec = self.spec
        if (type(x) is not array_type or type(w) is not array_type
                or x.shape != spec.input_shape or w.shape != spec.weight_shape
                or x.dtype != dtype or w.dtype != dtype
                or x.context.int_ptr != ctx_ptr or w.context.int_ptr != ctx_ptr
                or not (x.flags.c_contiguous and w.flags.c_contiguous)):
            return None
        if b is None:
            if spec.bias:
                return None
        elif (not spec.bias or type(b) is not array_type or b.shape != (spec.out_channels,) or b.dtype != dtype
              or b.context.int_ptr != ctx_ptr or not b.flags.c_contiguous):
            return None
        queue = x.queue
        if queue is None:
            return None
        runtime.note_queue(queue)
        y = cl_array.empty_like(template, queue=queue)
        with lock:
            try:
                self.run(queue, x, w, b, y)
            except cl.Error as exc:
                raise runtime.device_error(f"{self.algorithm.id} on {self.device.id}", exc) from exc
        return y

    def context_for(self, queue: Any) -> Any:
        return queue.context

    def compute(self, input: Any, weight: Any, bias: Any, out: Any) -> Any:
        spec = self.spec
        on_device = is_device_array(input)
        if on_device:
            queue = input.queue
            if queue is None:
                raise ConvValueError("input is a pyopencl array without a queue: create it with a queue")
            runtime.note_queue(queue)
        else:
            queue = self.device.queue
        if spec.batch == 0:
            if out is not None:
                return out
            if on_device:
                return cl_array.empty(queue, spec.output_shape, np.dtype(spec.dtype))
            return np.empty(spec.output_shape, dtype=spec.dtype)
        # Host data goes through staging buffers that live as long as the kernel: a
        # cached plan then makes no device allocations per call, only the copies.
        lock = self.__dict__.get("_stage_lock") or self.__dict__.setdefault("_stage_lock", threading.Lock())
        with lock:
            return self._compute(queue, on_device, input, weight, bias, out)

    def _compute(self, queue: Any, on_device: bool, input: Any, weight: Any, bias: Any, out: Any) -> Any:
        align = getattr(self.device, "zero_copy_align", 0)
        if align and not on_device and not is_device_array(out):
            return self._compute_in_place(queue, align, input, weight, bias, out)
        spec = self.spec
        ctx = queue.context
        keep = []  # host arrays whose non-blocking uploads are in flight
        # A pyopencl result (a pyopencl out, or none and a pyopencl input) is returned before
        # the call's commands run; a NumPy one after a blocking download, which waits for them.
        returns_device = is_device_array(out) if out is not None else on_device

        def device(name: str, arr: Any) -> Any:
            if is_device_array(arr):
                return _device_array(name, arr, ctx, queue, spec.dtype)
            host = runtime.host_array(arr, spec.dtype)
            if returns_device and np.may_share_memory(host, arr):
                # OpenCL lets a non-blocking upload read the host memory until it completes:
                # when the call returns before that, upload from a copy (pyopencl holds it until
                # then), so that the caller may change its array at once. A blocking upload
                # would instead wait for every earlier command on the queue (a chain of layers
                # would lose its overlap with the host).
                host = host.copy()
            keep.append(host)
            return self._stage(queue, name, host)

        x = device("input", input)
        w = device("weight", weight)
        b = device("bias", bias) if bias is not None else None
        into = None  # a pyopencl out that overlaps an argument: the result goes there at the end
        if out is not None and is_device_array(out):
            y = _device_array("out", out, ctx, queue, spec.dtype)
            if any(_overlap(y, a) for a in (x, w, b)):
                into, y = y, cl_array.empty(queue, spec.output_shape, np.dtype(spec.dtype))
        elif out is not None:
            # Start from the caller's values, so that an element the kernel fails to
            # write keeps them (the conformance suite poisons `out` to catch that).
            y = device("out", out)
        elif on_device:
            y = cl_array.empty(queue, spec.output_shape, np.dtype(spec.dtype))
        else:
            y = self._stage(queue, "out", None)
        try:
            self.run(queue, x, w, b, y)
            if into is not None:  # device to device, on the queue: no host round trip
                cl.enqueue_copy(queue, into.base_data, y.base_data, byte_count=y.nbytes,
                                src_offset=y.offset, dst_offset=into.offset)
            if returns_device:
                if out is None and is_device_array(weight) and "_device_fast" not in self.__dict__:
                    # repeated device calls in this context take _device_call; the template
                    # holds a 64-byte buffer, not an output's worth
                    template = cl_array.Array(queue, spec.output_shape, np.dtype(spec.dtype),
                                              data=cl.Buffer(ctx, cl.mem_flags.READ_WRITE, 64))
                    self.__dict__["_device_fast"] = (type(input), ctx.int_ptr, np.dtype(spec.dtype), template,
                                                     self.__dict__["_stage_lock"])
                return out if out is not None else y
            result = out if out is not None and out.flags.c_contiguous else np.empty(spec.output_shape, spec.dtype)
            cl.enqueue_copy(queue, result, y.data, is_blocking=True)
        except cl.Error as exc:
            raise runtime.device_error(f"{self.algorithm.id} on {self.device.id}", exc) from exc
        if out is not None and result is not out:
            out[...] = result
            return out
        return result

    def _compute_in_place(self, queue: Any, align: int, input: Any, weight: Any, bias: Any, out: Any) -> Any:
        """NumPy in and out on a device that shares host memory: the kernels read the caller's
        arrays and write the result where it is returned, with no copies (see
        ``OpenCLDevice.zero_copy_align``). A host array that is not C-contiguous, not of the
        call's dtype or not aligned goes through this kernel's aligned host staging copy."""
        spec = self.spec
        ctx = queue.context
        mf = cl.mem_flags

        def view(name: str, host: Any, writable: bool) -> Any:
            buf = cl.Buffer(ctx, (mf.READ_WRITE if writable else mf.READ_ONLY) | mf.USE_HOST_PTR, hostbuf=host)
            return HostView(queue, buf, host)

        coherent = getattr(self.device, "host_coherent", False)
        # The weight and bias are usually the same arrays call after call: their buffers are
        # kept (with a reference to the array, so that its memory stays put) and reused while
        # the caller passes the same object; any other array gets a new one.
        views = self.__dict__.setdefault("_views", {})

        def source(name: str, arr: Any) -> Any:
            if is_device_array(arr):
                return _device_array(name, arr, ctx, queue, spec.dtype)
            kept = views.get(name)
            if kept is not None and kept[0] is arr and kept[1].queue.int_ptr == queue.int_ptr:
                return kept[1]
            view_ = _zero_copy_source(name, arr)
            if name != "input" and view_.host is arr:  # in place, not a staged copy
                views[name] = (arr, view_)
            return view_

        def _zero_copy_source(name: str, arr: Any) -> Any:
            if isinstance(arr, np.ndarray) and arr.dtype == spec.dtype and arr.flags.c_contiguous and arr.size:
                addr = host_address(arr)
                if addr % align == 0:
                    return view(name, arr, False)
                # every kernel reads its arrays at any element offset (unaligned vector loads)
                placed = host_pointer_buffer(ctx, mf.READ_ONLY | mf.USE_HOST_PTR, arr, addr, align) if coherent else None
                if placed is not None:
                    return HostView(queue, placed[0], arr, placed[1])
            host = self._host_stage(name, np.shape(arr), align)
            host[...] = arr
            return view(name, host, False)

        x = source("input", input)
        w = source("weight", weight)
        b = source("bias", bias) if bias is not None else None
        direct_out = (
            out is not None and out.flags.c_contiguous and host_address(out) % align == 0
            # only host arrays can overlap `out` (NumPy would turn a pyopencl array, e.g. a cached
            # weight's device copy, into an object array element by element: seconds per call)
            and not any(isinstance(a, np.ndarray) and np.may_share_memory(out, a) for a in (input, weight, bias))
        )
        if direct_out:
            result = out
        elif out is not None:
            # Start from the caller's values, so that an element the kernel fails to
            # write keeps them (the conformance suite poisons `out` to catch that).
            result = self._host_stage("out", spec.output_shape, align)
            result[...] = out
        else:
            result = aligned_empty(spec.output_shape, spec.dtype, align)
        y = view("out", result, True)
        # a first call that repeats with the same weight and bias objects read in place: the
        # fast path for the next ones (one launch, or this call's launches replayed)
        repeats = (coherent and out is None and "_fast" not in self.__dict__ and queue is self.device.queue
                   and views.get("weight", (None,))[0] is weight
                   and (bias is None or views.get("bias", (None,))[0] is bias))
        try:
            try:
                if repeats and self.REPLAYS:
                    with runtime.recording() as rec:
                        self.run(queue, x, w, b, y)
                else:
                    self.run(queue, x, w, b, y)
                if coherent:
                    queue.finish()
                    if repeats and self.ONE_LAUNCH:
                        self.__dict__["_fast"] = self._make_fast(queue, align, weight, bias)
                    elif repeats and self.REPLAYS:
                        fast = self._make_launch_replay(queue, align, weight, bias, x, y, rec)
                        if fast is not None:
                            self.__dict__["_fast"] = fast
                else:
                    # Mapping the output waits for the kernels and makes their writes visible
                    # to the host (OpenCL's rule for host pointers).
                    mapped, _ = cl.enqueue_map_buffer(queue, y.data, cl.map_flags.READ, 0, result.shape,
                                                      result.dtype, is_blocking=True)
                    mapped.base.release(queue)
            except BaseException:
                queue.finish()  # no kernel may still read or write the caller's memory
                raise
        except cl.Error as exc:
            raise runtime.device_error(f"{self.algorithm.id} on {self.device.id}", exc) from exc
        if out is not None and result is not out:
            out[...] = result
            return out
        return result

    def _make_fast(self, queue: Any, align: int, weight: np.ndarray, bias: np.ndarray | None) -> Any:
        """The fast path of a one-launch kernel on a host-coherent zero-copy device, made after
        a first call that ran in place: while the caller passes the same weight and bias
        objects, a C-contiguous NumPy input of the spec's dtype and no ``out``, a call is two
        host-pointer buffers, an aligned output, one launch and a wait, with every constant
        worked out here once. It returns None (the caller takes the general path, which
        makes every check and raises the errors) for anything else. A small layer on PoCL's
        basic device: 12-18 us per call on the general path, 6-12 through this one, of which
        the launch (with the kernel's own work, there on the calling thread) is 2-6
        (``benchmarks/overhead.py``)."""
        spec = self.spec
        knl, lock, gsize, local, tail = self._launch_memo[(queue.context.int_ptr, bias is not None)]
        views = self._views
        w_args = self.buf(views["weight"][1])
        b_args = self.buf(views["bias"][1]) if bias is not None else (None, _I32_0)
        w_shape = spec.weight_shape
        io = zero_copy_io(spec, queue.context, align)
        enqueue, finish, error = cl.enqueue_nd_range_kernel, queue.finish, cl.Error
        # CLCONV_ZERO_COPY is looked up on every call (a change takes the general path)
        env = runtime.env
        zero_copy = env("CLCONV_ZERO_COPY", "1")
        name = f"{self.algorithm.id} on {self.device.id}"
        set_args = _arg_setter(knl, w_args, b_args, tail)

        def fast(x: Any, w: Any, b: Any) -> np.ndarray | None:
            if w is not weight or b is not bias or w.shape != w_shape or env("CLCONV_ZERO_COPY", "1") != zero_copy:
                return None
            arrays = io(x)
            if arrays is None:
                return None
            xb, x_off, result, yb = arrays
            try:
                try:
                    with lock:
                        set_args(xb, x_off, yb)
                        enqueue(queue, knl, gsize, local)
                finally:
                    finish()  # no kernel may still read or write the caller's memory
            except error as exc:
                raise runtime.device_error(name, exc) from exc
            return result

        return fast

    def _make_launch_replay(self, queue: Any, align: int, weight: np.ndarray, bias: np.ndarray | None, x: Any, y: Any,
                     rec: runtime.Recording) -> Any:
        """The fast path of a :attr:`REPLAYS` kernel on a host-coherent zero-copy device, made
        from a first call that ran in place (``rec``: its launches, switches and workspace):
        while the caller passes the same weight and bias objects (at the same addresses), a
        C-contiguous NumPy input of the spec's dtype and no ``out``, and the switches the call
        read keep their values, a call sets the recorded launches' arguments with the new
        input's and output's host-pointer buffers and offsets (the argument after x's or y's
        buffer is its offset), enqueues them and waits: no Python of :meth:`run` (chunking,
        programs, argument lists). It returns None (the general path takes the call, makes
        every check and a new replay) for anything else, or when the workspace was replaced.
        None here: a call this cannot replay (x or y passed otherwise, more than one workspace).
        ResNet-50's 3x3 layer at 14x14 through im2col on PoCL: ~0.12-0.17 ms of Python before
        the first launch, ~0.08 replayed (``benchmarks/overhead.py``)."""
        if len(rec.holds) > 1 or not rec.launches:
            return None
        x_buf, x_off = self.buf(x)
        y_buf, y_off = self.buf(y)
        launches = []
        for prog, name, gsize, lsize, args in rec.launches:
            holes = []
            for i, a in enumerate(args):
                if a is x_buf or a is y_buf:
                    off = x_off if a is x_buf else y_off
                    if i + 1 >= len(args) or not isinstance(args[i + 1], np.int32) or args[i + 1] != off:
                        return None
                    holes.append((i, a is x_buf))
            knl, lock = runtime.kernel_object(prog, name, args)
            if holes:  # (not keeping this call's buffers, and so its input, alive)
                args = tuple(None if any(i in (h, h + 1) for h, _ in holes) else a for i, a in enumerate(args))
            launches.append((knl, lock, gsize, lsize, args, tuple(holes)))
        switches = tuple((name, default, value) for (name, default), value in rec.env.items())
        pool, nbytes, ws0 = rec.holds[0] if rec.holds else (None, 0, None)
        spec = self.spec
        w_shape, b_shape = spec.weight_shape, (spec.out_channels,)
        w_addr = host_address(weight)
        b_addr = host_address(bias) if bias is not None else 0
        io = zero_copy_io(spec, queue.context, align)
        enqueue, finish, error, i32, env = cl.enqueue_nd_range_kernel, queue.finish, cl.Error, np.int32, runtime.env
        zero_copy = env("CLCONV_ZERO_COPY", "1")
        label = f"{self.algorithm.id} on {self.device.id}"
        state = self.__dict__

        def enqueue_all(xb: Any, xo: Any, yb: Any) -> None:
            for knl, lock, gsize, lsize, args, holes in launches:
                if holes:
                    args = list(args)
                    for i, is_x in holes:
                        args[i], args[i + 1] = (xb, xo) if is_x else (yb, _I32_0)
                with lock:
                    knl.set_args(*args)
                    enqueue(queue, knl, gsize, lsize)

        def fast(x: Any, w: Any, b: Any) -> np.ndarray | None:
            if (w is not weight or b is not bias or w.shape != w_shape or host_address(w) != w_addr
                    or (b is not None and (b.shape != b_shape or host_address(b) != b_addr))
                    or env("CLCONV_ZERO_COPY", "1") != zero_copy):
                return None
            for name, default, value in switches:
                if env(name, default) != value:  # the next general call records another
                    state.pop("_fast", None)
                    return None
            arrays = io(x)
            if arrays is None:
                return None
            xb, xo, result, yb = arrays
            try:
                try:
                    if pool is None:
                        enqueue_all(xb, i32(xo), yb)
                    else:
                        with pool.hold(queue, nbytes) as ws:
                            if ws is not ws0:  # replaced (a larger spec): the next general call makes another
                                state.pop("_fast", None)
                                return None
                            enqueue_all(xb, i32(xo), yb)
                finally:
                    finish()  # no kernel may still read or write the caller's memory
            except error as exc:
                raise runtime.device_error(label, exc) from exc
            return result

        return fast

    def _stage(self, queue: Any, name: str, host: Any) -> Any:
        """This kernel's device buffer for ``name`` on the queue, filled from ``host``. One per
        queue, not per context: the commands of one in-order queue run one after another, so
        a later call's upload cannot overwrite it while an earlier call's kernels still read
        it, which a call on another queue of the context could."""
        cache = self.__dict__.setdefault("_staging", {})
        shape = self.spec.output_shape if host is None else host.shape
        key = (queue.int_ptr, name)
        arr = cache.get(key)
        if arr is None or arr.shape != tuple(shape):
            arr = cache[key] = cl_array.empty(queue, shape, np.dtype(self.spec.dtype))
        if host is not None:
            cl.enqueue_copy(queue, arr.data, host, is_blocking=False)
        return arr

    def _host_stage(self, name: str, shape: tuple[int, ...], align: int) -> np.ndarray:
        """This kernel's aligned host staging array for ``name`` (reused call after call)."""
        cache = self.__dict__.setdefault("_host_staging", {})
        arr = cache.get(name)
        if arr is None or arr.shape != tuple(shape):
            arr = cache[name] = aligned_empty(tuple(shape), self.spec.dtype, align)
        return arr

    @abstractmethod
    def run(self, queue: Any, x: Any, w: Any, b: Any, y: Any) -> None:
        """Enqueue the convolution: x, w, b (or None), y are C-contiguous pyopencl arrays."""

    # helpers for subclasses
    def launch_buffers(self, queue: Any, x: Any, w: Any, b: Any, y: Any) -> None:
        """Launch a one-kernel algorithm: x, w, b (or none), y, then the arguments that
        ``_launch_setup(ctx, has_bias)`` returns once per (context, bias), with the program,
        the kernel name and the sizes; working those out on every call cost ~15 us of Python,
        a quarter of a small layer's time."""
        key = (queue.context.int_ptr, b is not None)
        memo = self.__dict__.setdefault("_launch_memo", {})
        buf = self.buf
        args = (*buf(x), *buf(w), *(buf(b) if b is not None else (None, _I32_0)), *buf(y))
        fixed = memo.get(key)
        if fixed is None:
            prog, name, gsize, local, tail = self._launch_setup(queue.context, b is not None)  # type: ignore[attr-defined]
            fixed = memo[key] = (*runtime.kernel_object(prog, name, args + tuple(tail)),
                                 tuple(gsize), tuple(local) if local is not None else None, tuple(tail))
        knl, lock, gsize, local, tail = fixed
        with lock:
            knl.set_args(*args, *tail)
            cl.enqueue_nd_range_kernel(queue, knl, gsize, local)

    @staticmethod
    def buf(arr: Any) -> tuple[Any, np.int32]:
        """(buffer, element offset) of a pyopencl array, as kernel arguments."""
        off = arr.offset
        return arr.base_data, _I32_0 if off == 0 else np.int32(off // arr.dtype.itemsize)

    def memo_program(self, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        """``build()`` (a :meth:`program` call) memoized under ``key``, which the caller makes of
        what its defines depend on (context, bias, switches): cheaper on every call than
        :meth:`program`'s key of the sorted defines (~5 us a launch here)."""
        memo = self.__dict__.setdefault("_program_memo", {})
        prog = memo.get(key)
        if prog is None:
            prog = memo[key] = build()
        return prog

    def program(self, ctx: Any, filename: str, defines: dict[str, Any]) -> Any:
        """The built program of ``filename`` with ``defines`` in ``ctx``, memoized on this kernel
        (so a cached plan does not even hash its source again)."""
        memo = self.__dict__.setdefault("_programs", {})
        key = (ctx.int_ptr, filename, tuple(sorted(defines.items())))
        prog = memo.get(key)
        if prog is None:
            d = dict(runtime.dtype_defines(self.spec.dtype))
            d.update(defines)
            prog = memo[key] = runtime.build_program(
                self.device, filename, d, context=ctx, fp64=self.spec.dtype == "float64"
            )
        return prog
