"""``clconv explain``: the dispatcher's candidate table for one convolution."""

from __future__ import annotations

import click

from .. import dispatch
from ..backend import format_bytes
from ..errors import ClconvError
from ._spec import build_spec, spec_options
from ._util import echo_json, print_table


def _ms(t):  # type: ignore[no-untyped-def]
    if t is None:
        return "-"
    if t == float("inf"):
        return "not measured"
    return f"{t * 1e3:.3f}"


@click.command("explain")
@spec_options
@click.option("--backend", default=None, help="Pin a backend.")
@click.option("--device", default=None, help="Pin a device id.")
@click.option("--algorithm", default=None, help="Pin an algorithm id.")
@click.option("--policy", type=click.Choice(["auto", "heuristic", "measure"]), default=None,
              help="Override the policy (measure: time the candidates now).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(function, input_, weight, bias, stride, padding, dilation, groups, padding_mode, output_padding, dtype,  # type: ignore[no-untyped-def]
            backend, device, algorithm, policy, as_json):
    """Show every candidate for FUNCTION (conv2d, conv_transpose1d, ...): supported or why not,
    predicted and measured time, workspace, kernel parameters (tuned or default), and the one chosen."""
    spec = build_spec(function, input_, weight, bias, stride, padding, dilation, groups, padding_mode,
                      output_padding, dtype)
    try:
        expl = dispatch.explain(spec, backend=backend, device=device, algorithm=algorithm, policy=policy)
    except ClconvError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        echo_json(expl.as_dict())
        return
    print_table(
        f"{spec.describe()} — policy {expl.policy}, decided by {expl.decided_by}",
        ["", "backend", "device", "algorithm", "supported / reason", "predicted ms", "measured ms", "workspace",
         "params"],
        [
            (
                "*" if c.chosen else "", c.backend, c.device.id, c.algorithm.id,
                "yes" if c.support.ok else c.support.reason,
                _ms(c.predicted_s) if c.support.ok else "", _ms(c.measured_s) if c.support.ok else "",
                format_bytes(c.workspace_bytes) if c.workspace_bytes is not None else "",
                c.params_text if c.support.ok else "",
            )
            for c in expl.candidates
        ],
    )
    if expl.chosen is None:
        raise click.ClickException("no candidate can run this convolution (reasons above)")
