"""The public face: torch.nn.functional-style convolution calls, plans and explanations."""

from __future__ import annotations

from typing import Any

from . import dispatch
from .backend import Device
from .dispatch import ConstantWeightsPlan, Explanation, Plan
from .errors import ConvTypeError
from .spec import ConvSpec, _short_repr, is_array, is_device_array

_CONV_OPS = {f"conv{n}d": ("conv", n) for n in (1, 2, 3)}
_CONV_OPS.update({f"conv_transpose{n}d": ("conv_transpose", n) for n in (1, 2, 3)})
#: The keyword parameters plan/explain pass on to validation (output_padding for conv and
#: padding_mode for transposed are refused there, with the reason).
_PARAMS = ("stride", "padding", "dilation", "groups", "padding_mode", "output_padding")


def _spec(name: str, input: Any, weight: Any, bias: Any, params: dict[str, Any]) -> ConvSpec:
    try:
        op, nd = _CONV_OPS[name]
    except KeyError:
        from .errors import bad_value

        raise bad_value("op", name, f"accepted {', '.join(_CONV_OPS)}") from None
    for key, value in params.items():
        if key not in _PARAMS and key != "dtype":
            raise ConvTypeError(
                f"{key}={_short_repr(value)} is not accepted: {name} takes {', '.join(_PARAMS)} "
                "(and dtype= with shapes)"
            )
    if is_array(input) and is_array(weight):
        if "dtype" in params:
            raise ConvTypeError(
                f"dtype={params['dtype']!r} is not accepted with arrays: the input's dtype "
                f"({input.dtype}) is the call's; dtype= goes with shapes"
            )
        return ConvSpec.from_arrays(op, nd, input, weight, bias, **params)
    if is_array(input) or is_array(weight):
        arr, other = ("input", "weight") if is_array(input) else ("weight", "input")
        raise ConvTypeError(
            f"{arr} is an array but {other}={_short_repr(input if other == 'input' else weight)} is not: "
            "give both as arrays, or both as shapes (tuples of ints, with dtype=...)"
        )
    # Shapes instead of arrays (explain/plan ahead of data): dtype comes from params.
    dtype = params.pop("dtype", "float32")
    return ConvSpec.from_shapes(
        op, input, weight, bias=bias is not None and bias is not False, dtype=dtype, ndim=nd, **params
    )


def _pins(algorithm: Any, backend: Any, device: Any) -> dict[str, Any]:
    return {"algorithm": None if algorithm == "auto" else algorithm, "backend": backend, "device": device}


#: Validated specs of recent calls, keyed by everything validation reads (see _run).
_specs: dict[Any, ConvSpec] = {}
_SPECS_MAX = 4096


def _array_key(a: Any) -> Any:
    return None if a is None else (type(a), tuple(a.shape), a.dtype.str)


def _run(name: str, input: Any, weight: Any, bias: Any, params: dict[str, Any], pins: dict[str, Any]) -> Any:
    # The conv functions take arrays only (shapes are for plan/explain): validate
    # through from_arrays so that a list, a scalar or a shape tuple is a TypeError
    # naming the parameter, not a confusing shape error or an AttributeError.
    # Validation depends only on the arrays' types, shapes and dtypes and on the
    # parameters (repr tells True from 1 and a list from a tuple), so a call that
    # repeats an earlier valid one reuses its spec: ~20 us less per call.
    try:
        key = (name, _array_key(input), _array_key(weight), _array_key(bias), repr(params))
        spec = _specs.get(key)
    except (AttributeError, TypeError):
        key = spec = None
    if spec is None:
        op, nd = _CONV_OPS[name]
        spec = ConvSpec.from_arrays(op, nd, input, weight, bias, **params)
        if key is not None:
            if len(_specs) >= _SPECS_MAX:
                _specs.clear()
            _specs[key] = spec
    placement = input if is_device_array(input) else None
    return dispatch.plan(spec, placement=placement, **pins)(input, weight, bias)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", algorithm="auto", backend=None, device=None):  # type: ignore[no-untyped-def]
    """1D convolution of input (N, C_in, L) with weight (C_out, C_in/groups, k). See conv2d."""
    return _run("conv1d", input, weight, bias,
                dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=padding_mode),
                _pins(algorithm, backend, device))


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", algorithm="auto", backend=None, device=None):  # type: ignore[no-untyped-def]
    """2D convolution, as ``torch.nn.functional.conv2d``.

    input (N, C_in, H, W); weight (C_out, C_in/groups, kH, kW); bias (C_out,) or None.
    ``padding`` is an int, one int per dim, one (before, after) pair per dim,
    ``"valid"`` or ``"same"`` (any stride; the odd element goes at the end).
    ``padding_mode`` is ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
    ``algorithm``/``backend``/``device`` pin the choice; by default the dispatcher picks.
    Returns an array of the input's dtype: NumPy for NumPy input, a pyopencl
    array on the same device for pyopencl input.
    """
    return _run("conv2d", input, weight, bias,
                dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=padding_mode),
                _pins(algorithm, backend, device))


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", algorithm="auto", backend=None, device=None):  # type: ignore[no-untyped-def]
    """3D convolution of input (N, C_in, D, H, W) with weight (C_out, C_in/groups, kD, kH, kW). See conv2d."""
    return _run("conv3d", input, weight, bias,
                dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=padding_mode),
                _pins(algorithm, backend, device))


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, algorithm="auto", backend=None, device=None):  # type: ignore[no-untyped-def]
    """1D transposed convolution; weight (C_in, C_out/groups, k). See conv_transpose2d."""
    return _run("conv_transpose1d", input, weight, bias,
                dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation),
                _pins(algorithm, backend, device))


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, algorithm="auto", backend=None, device=None):  # type: ignore[no-untyped-def]
    """2D transposed convolution, as ``torch.nn.functional.conv_transpose2d``.

    input (N, C_in, H, W); weight (C_in, C_out/groups, kH, kW). ``padding`` is an
    int, one int per dim, one (before, after) pair per dim (cropped from each end
    of the full result) or ``"valid"``; ``output_padding`` adds elements at the
    end, each < max(stride, dilation).
    """
    return _run("conv_transpose2d", input, weight, bias,
                dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation),
                _pins(algorithm, backend, device))


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, algorithm="auto", backend=None, device=None):  # type: ignore[no-untyped-def]
    """3D transposed convolution; weight (C_in, C_out/groups, kD, kH, kW). See conv_transpose2d."""
    return _run("conv_transpose3d", input, weight, bias,
                dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation),
                _pins(algorithm, backend, device))


def plan(op: str, input: Any, weight: Any, bias: Any = None, *, algorithm: str = "auto",
         backend: str | None = None, device: str | Device | None = None, constant_weights: bool = False,
         **params: Any) -> Plan | ConstantWeightsPlan:
    """Choose and prepare once; call the returned Plan with arrays many times.

    ``op`` is a function name (``"conv2d"``, ``"conv_transpose1d"``...). input and
    weight are arrays or shapes (then pass ``bias=True`` for a bias and
    ``dtype=...``); ``params`` are the function's keyword parameters.

    ``constant_weights=True`` promises that the weight and bias arrays passed to the plan are
    not changed in place between its calls (inference): a :class:`ConstantWeightsPlan`, which
    lets algorithms that keep a prepared weight skip the per-call check of a NumPy weight's
    bytes. A weight changed in place is then not seen; pass a new array instead.
    """
    if not isinstance(constant_weights, bool):
        raise ConvTypeError(
            f"constant_weights={constant_weights!r} has type {type(constant_weights).__name__}: give True or False"
        )
    spec = _spec(op, input, weight, bias, dict(params))
    placement = input if is_device_array(input) else None
    p = dispatch.plan(spec, placement=placement, **_pins(algorithm, backend, device))
    return dispatch.ConstantWeightsPlan(p) if constant_weights else p


def explain(op: str, input: Any, weight: Any, bias: Any = None, *, algorithm: str = "auto",
            backend: str | None = None, device: str | Device | None = None, policy: str | None = None,
            **params: Any) -> Explanation:
    """The dispatcher's candidate table for a call, without running it.

    Arguments as :func:`plan`; ``policy`` overrides the configured policy for this
    decision (``"measure"`` times the candidates now). Returns an
    :class:`Explanation`: ``.candidates`` (every backend/device/algorithm with its
    support reason, predicted and measured time, workspace), ``.chosen``,
    ``.decided_by``, ``.rows()`` and ``.as_dict()`` for data, ``str()`` for a table.
    """
    spec = _spec(op, input, weight, bias, dict(params))
    placement = input if is_device_array(input) else None
    return dispatch.explain(spec, placement=placement, policy=policy, **_pins(algorithm, backend, device))
