"""Layer checks: shape, finiteness, gradient flow, batch independence, gradcheck, determinism.

They run on the whole model and on any submodule named (its input is caught with a forward
hook during a whole-model pass), on a small real batch, in a few hundred milliseconds.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from tuneloop.checks._result import FAIL, PASS, SKIP, CheckResult

_MIXERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def crash(name: str, exc: BaseException) -> CheckResult:
    """A forward or backward that raised is that check's failure, with the traceback as evidence."""
    return CheckResult(name, FAIL, f"the model raised {type(exc).__name__}: {exc}",
                       {"traceback": traceback.format_exc()},
                       ["a shape mismatch between layers", "the data's dtype or device"],
                       "run the model on one batch in a Python shell and read the traceback")


def output_checks(model: nn.Module, x: torch.Tensor, n_outputs: int | None, where: str = "model") -> list[CheckResult]:
    """Output shape (batch first, one column per class) and finite outputs."""
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:  # noqa: BLE001 - reported as the check's failure
        return [crash(f"output shape ({where})", exc)]
    out = (out[0] if isinstance(out, tuple) else out).detach()
    shape = list(out.shape)
    ok = shape[0] == x.shape[0] and (n_outputs is None or shape[-1] == n_outputs)
    results = [CheckResult(
        f"output shape ({where})", PASS if ok else FAIL,
        f"output shape {shape} for input {list(x.shape)}" + ("" if ok else f"; expected [{x.shape[0]}, ..., {n_outputs}]"),
        {"input_shape": list(x.shape), "output_shape": shape, "expected_outputs": n_outputs},
        [] if ok else ["the last layer's size does not match the number of classes", "a reshape drops the batch axis"],
        "" if ok else "print the shape after each layer (a forward hook) to find where it changes")]
    finite = bool(torch.isfinite(out).all())
    results.append(CheckResult(
        f"finite outputs ({where})", PASS if finite else FAIL,
        "every output is finite" if finite else f"{int((~torch.isfinite(out)).sum())} outputs are NaN or infinite",
        {"nonfinite": int((~torch.isfinite(out)).sum())},
        [] if finite else ["a log or division of zero in forward", "NaN in the input data", "an exploding initialization"],
        "" if finite else "check the inputs for NaN, then each layer's output"))
    return results


def gradient_flow(model: nn.Module, x: torch.Tensor, where: str = "model") -> CheckResult:
    """Every parameter gets a non-zero gradient from the output."""
    name = f"gradient reaches every parameter ({where})"
    model.zero_grad(set_to_none=True)
    try:
        out = model(x)
        out = (out[0] if isinstance(out, tuple) else out).float()
        # a fixed random projection: any parameter that affects the output gets a non-zero
        # gradient (a squared output would give none to, say, logits initialized at zero)
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(0)).to(out.device)
        (out * weights).sum().backward()
    except Exception as exc:  # noqa: BLE001
        return crash(name, exc)
    none = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    zero = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is not None and not p.grad.any()]
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    model.zero_grad(set_to_none=True)
    if none or zero:
        return CheckResult(name, FAIL, f"no gradient reaches {len(none) + len(zero)} parameters",
                           {"no_gradient": none, "zero_gradient": zero, "frozen": frozen},
                           ["a layer used through .detach(), .data or torch.no_grad()",
                            "a layer defined but never called in forward", "a ReLU dead for the whole batch"],
                           f"look at how forward uses: {', '.join((none + zero)[:5])}")
    note = f" ({len(frozen)} frozen on purpose)" if frozen else ""
    return CheckResult(name, PASS, f"all {sum(1 for _ in model.parameters()) - len(frozen)} trainable tensors get a gradient{note}",
                       {"frozen": frozen})


def batch_independence(model: nn.Module, x: torch.Tensor, where: str = "model") -> CheckResult:
    """The gradient of sample i's output w.r.t. sample j's input is zero for j != i."""
    name = f"batch independence ({where})"
    mixers = [n for n, m in model.named_modules() if isinstance(m, _MIXERS)]
    was_training = model.training
    if mixers:
        model.eval()  # batch norm mixes the batch in training mode on purpose; eval mode does not
    x = x[: min(len(x), 8)].detach().clone().requires_grad_(True)
    i = len(x) // 2
    try:
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        out[i].float().sum().backward()
    except Exception as exc:  # noqa: BLE001
        model.train(was_training)
        return crash(name, exc)
    finally:
        model.train(was_training)
    if x.grad is None:  # the output does not depend on the input at all: nothing mixes (input check says more)
        return CheckResult(name, PASS, "the output does not depend on the input, so nothing mixes the batch",
                           {"input_gradient": None})
    grad = x.grad.reshape(len(x), -1).abs().sum(dim=1)
    leaks = [j for j in range(len(x)) if j != i and float(grad[j]) > 0]
    note = f"; checked in eval mode because {', '.join(mixers)} mix the batch in training mode" if mixers else ""
    if leaks:
        return CheckResult(name, FAIL, f"sample {i}'s output depends on samples {leaks} of the batch{note}",
                           {"sample": i, "depends_on": leaks, "input_grad_norms": [float(g) for g in grad]},
                           [("a view/reshape that moves the batch axis (e.g. x.view(features, batch) instead of "
                             "x.view(batch, features))"), "a transpose before flattening",
                            "a mean or softmax over dim 0"],
                           "find the reshape or reduction that touches dim 0; use x.flatten(1) or x.reshape(len(x), -1)")
    return CheckResult(name, PASS, f"sample {i}'s output depends on sample {i} alone{note}",
                       {"sample": i, "mixers": mixers})


def determinism(build: Callable[[], nn.Module] | None, x: torch.Tensor, seed: int = 0) -> CheckResult:
    """The same seed builds the same model, and it gives the same output twice."""
    name = "same output twice under a fixed seed"
    if build is None:
        return CheckResult(name, SKIP, "give model= a function that builds the model to check its initialization")
    outs = []
    try:
        for _ in range(2):
            torch.manual_seed(seed)
            net = build().to(x.device).eval()
            with torch.no_grad():
                out = net(x)
            outs.append((out[0] if isinstance(out, tuple) else out).detach())
    except Exception as exc:  # noqa: BLE001
        return crash(name, exc)
    diff = float((outs[0] - outs[1]).abs().max())
    if diff > 0:
        return CheckResult(name, FAIL, f"two builds with seed {seed} differ by up to {diff:.3g}", {"max_difference": diff},
                           ["randomness outside torch's generator (random, numpy) in the model's constructor",
                            "a non-deterministic operation in forward"],
                           "seed random and numpy too, or draw the initialization from torch")
    return CheckResult(name, PASS, "two builds with the same seed give identical outputs", {"seed": seed})


def gradchecks(functions: Sequence[tuple[Callable[..., Any], Sequence[Any]]]) -> CheckResult:
    """torch.autograd.gradcheck in float64 for each (function, example inputs) given."""
    name = "custom autograd functions (float64 gradcheck)"
    if not functions:
        return CheckResult(name, SKIP, "none given (functions=[(fn, inputs)] checks custom autograd functions)")
    failed = []
    for fn, inputs in functions:
        args = tuple(a.detach().double().requires_grad_(a.is_floating_point()) if isinstance(a, torch.Tensor) else a
                     for a in inputs)
        try:
            ok = torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-4, raise_exception=False)
        except Exception:  # noqa: BLE001
            ok = False
        if not ok:
            failed.append(getattr(fn, "__name__", repr(fn)))
    if failed:
        return CheckResult(name, FAIL, f"analytic and numeric gradients disagree for {', '.join(failed)}",
                           {"failed": failed}, ["a wrong formula in backward", "backward returns gradients in the wrong order"],
                           "compare backward with a finite difference on a tiny input")
    return CheckResult(name, PASS, f"{len(functions)} functions match their numeric gradients", {"checked": len(functions)})


def module_inputs(model: nn.Module, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """The input each named submodule receives during a whole-model forward."""
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        from tuneloop.errors import ConfigError

        raise ConfigError(f"The model has no submodule {missing[0]!r}; its submodules are: "
                          f"{', '.join(n for n in modules if n)[:300]}.")
    caught: dict[str, torch.Tensor] = {}
    handles = [modules[n].register_forward_hook(
        lambda m, inp, out, n=n: caught.__setitem__(n, inp[0].detach())) for n in names]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return caught
