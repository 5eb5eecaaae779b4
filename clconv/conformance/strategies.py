"""Hypothesis strategies for random conformance cases (valid specs only)."""

from __future__ import annotations

from hypothesis import strategies as st

from ..errors import ConvValueError
from .cases import Case, _freeze, features_of


@st.composite
def cases(draw, dtype: str = "float32", max_side: int = 9) -> Case:  # type: ignore[no-untyped-def]
    """A small valid convolution of any kind: 1D/2D/3D, conv or transposed, every parameter."""
    nd = draw(st.integers(1, 3))
    transposed = draw(st.booleans())
    side = max_side if nd < 3 else 5
    groups = draw(st.sampled_from((1, 1, 2, 3)))
    c_in = groups * draw(st.integers(1, 3))
    c_out = groups * draw(st.integers(1, 3))
    n = draw(st.integers(1, 2))
    in_size = tuple(draw(st.integers(1, side)) for _ in range(nd))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    params: dict = {"stride": stride, "dilation": dilation, "groups": groups}
    if transposed:
        params["padding"] = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
        params["output_padding"] = tuple(
            draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation)
        )
        fn = f"conv_transpose{nd}d"
        weight = (c_in, c_out // groups, *kernel)
    else:
        mode = draw(st.sampled_from(("zeros", "zeros", "reflect", "replicate", "circular")))
        params["padding_mode"] = mode
        params["padding"] = draw(
            st.one_of(
                st.just("same"),
                st.tuples(*[st.tuples(st.integers(0, 3), st.integers(0, 3)) for _ in range(nd)]),
            )
        )
        fn = f"conv{nd}d"
        weight = (c_out, c_in // groups, *kernel)
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    case = Case(f"random-{seed}", fn, (n, c_in, *in_size), weight, bias, _freeze(params), dtype, seed=seed)
    try:
        spec = case.spec
    except ConvValueError:
        from hypothesis import reject

        reject()
    return Case(case.id, fn, case.input_shape, case.weight_shape, bias, case.params_items, dtype,
                seed=seed, features=features_of(spec))
