"""The adapter registry: how odexport recognises a dynamic convolution and reads it as an ODConvSpec.

An adapter is data: ``matches(module)`` (by structure: parameter shapes, child module types) and
``describe(module, options) -> ODConvSpec``, plus optional hooks for what a variant has beyond the
spec (an activation after the layer, a temperature kept as a plain attribute, an attention BatchNorm
whose use the layer's behaviour decides). Nothing outside an adapter knows a variant's attribute names.

Structure only proposes: adapters.confirmation uses a description after it reproduces the layer's own
forward, so matching may be generous.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..errors import InputError
from ..odconv import ODConvSpec

# The two eval behaviours of an attention BatchNorm that a variant skips at batch 1.
ATTENTION_BATCHNORM_CHOICES = ("apply", "skip")


@dataclass(frozen=True)
class AdapterOptions:
    """What the user chose where a variant's eval behaviour is ambiguous.

    attention_batchnorm: "apply" (running statistics: what the variant computes at batch > 1) or
    "skip" (what it computes at batch 1); None until chosen.
    """

    attention_batchnorm: str | None = None

    def __post_init__(self) -> None:
        if self.attention_batchnorm not in (None, *ATTENTION_BATCHNORM_CHOICES):
            raise InputError(f"attention_batchnorm {self.attention_batchnorm!r} is not one of "
                             f"{', '.join(ATTENTION_BATCHNORM_CHOICES)}",
                             hint="apply: use the running statistics (batch > 1 behaviour); skip: leave it out "
                                  "(batch 1 behaviour)")


@dataclass(frozen=True)
class TemperatureSlot:
    """A temperature kept as a plain attribute (not in the state dict): ``owner.attribute``."""

    owner: object
    attribute: str

    @property
    def value(self) -> float:
        return float(getattr(self.owner, self.attribute))

    def set(self, value: float) -> None:
        setattr(self.owner, self.attribute, value)


@dataclass(frozen=True)
class Requirement:
    """One structural condition of an adapter, said so that a user can see what their layer lacks:
    ``what`` names the child, parameter or shape ("attention.bn, a BatchNorm2d")."""

    what: str
    holds: Callable[[nn.Module], bool]

    def check(self, module: nn.Module) -> bool:
        try:
            return bool(self.holds(module))
        except Exception:  # a layer missing what an earlier requirement only assumed
            return False


def matches_all(requirements: tuple[Requirement, ...]) -> Callable[[nn.Module], bool]:
    """A ``matches`` that holds when every requirement does."""
    return lambda module: all(requirement.check(module) for requirement in requirements)


@dataclass(frozen=True)
class Adapter:
    """name: shown by inspect and written in the manifest; summary: one line on the variant.

    epilogue(module): modules the variant applies after the convolution that the spec does not hold
    (an activation), or None. temperature(module): where its temperature lives, or None.
    attention_batchnorm(module): the attention BatchNorm, or None; describe folds it in when
    ``options.attention_batchnorm`` is "apply" and leaves it out for "skip", and confirmation finds
    which the layer does (always, never, or only at batch > 1). requirements: the structural
    conditions in the order ``matches`` checks them, for messages on layers it does not match.
    """

    name: str
    summary: str
    matches: Callable[[nn.Module], bool]
    describe: Callable[[nn.Module, AdapterOptions], ODConvSpec]
    epilogue: Callable[[nn.Module], nn.Module | None] | None = None
    temperature: Callable[[nn.Module], TemperatureSlot | None] | None = None
    attention_batchnorm: Callable[[nn.Module], nn.Module | None] | None = None
    requirements: tuple[Requirement, ...] = ()

    def structure_gap(self, module: nn.Module) -> tuple[int, str | None]:
        """(how many requirements ``module`` meets before the first it misses, what that one asks), or
        (all, None) when it meets them all."""
        for met, requirement in enumerate(self.requirements):
            if not requirement.check(module):
                return met, requirement.what
        return len(self.requirements), None


_ADAPTERS: list[Adapter] = []


def register_adapter(adapter: Adapter, *, before: str | None = None) -> Adapter:
    """Register ``adapter``; adapters are tried in registration order (the first whose description is
    confirmed claims a layer), so register specific ones first, or ``before`` the named adapter."""
    if any(known.name == adapter.name for known in _ADAPTERS):
        raise ValueError(f"adapter {adapter.name!r} is registered twice")
    names = [known.name for known in _ADAPTERS]
    if before is not None and before not in names:
        raise ValueError(f"no adapter {before!r} to register {adapter.name!r} before (registered: {', '.join(names)})")
    _ADAPTERS.insert(names.index(before) if before is not None else len(_ADAPTERS), adapter)
    return adapter


def unregister_adapter(name: str) -> Adapter:
    """Remove the adapter called ``name`` (and return it)."""
    index = next((i for i, known in enumerate(_ADAPTERS) if known.name == name), None)
    if index is None:
        raise ValueError(f"no adapter {name!r} is registered")
    return _ADAPTERS.pop(index)


def list_adapters() -> list[Adapter]:
    return list(_ADAPTERS)


def matching_adapters(module: nn.Module) -> list[Adapter]:
    """The adapters whose structure ``module`` has, in registration order (none confirmed yet)."""
    return [adapter for adapter in _ADAPTERS if adapter.matches(module)]
