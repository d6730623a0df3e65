"""Name → class registries for the swappable parts of a model.

A part is given in one of three ways::

    "normal"                                   # by name
    {"name": "gaussian", "scale": "learned"}   # by name with options
    NormalPrior(latent_dim=2)                  # as an object, used as is

``Registry.build`` turns any of them into an object and fails at construction, with the list
of what is known, on an unknown name or option.
"""

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T", bound=type)

FIXED = (
    "input_dim",
    "input_shape",
    "latent_dim",
    "output_dim",
    "output_shape",
    "param_dims",
    "num_components",
)
"""Context entries a part must take from its model: a spec that sets one would build a part
whose shapes do not fit the rest of the model."""


class Registry:
    """A small registry of part classes for one kind of part (``"prior"``, ``"likelihood"``…)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: ``@priors.register("normal")``."""

        def decorator(cls: T) -> T:
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._classes[name] = cls
            cls.registered_name = name  # type: ignore[attr-defined]  # the class gains it here
            return cls

        return decorator

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __getitem__(self, name: str) -> type:
        try:
            return self._classes[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self.names())}"
            ) from None

    def build(self, spec: object, **context: Any) -> Any:
        """Build a part from a name, a ``{"name": ..., **options}`` dict or an object.

        ``context`` holds what the enclosing model knows (``latent_dim``, ``input_dim``…); a
        class receives only the context arguments its constructor accepts. Options the user gave
        must all be accepted, else a ``ValueError`` lists the valid ones; they override the
        context except for the shapes in :data:`FIXED`, which are refused.
        """
        if isinstance(spec, str):
            name, options = spec, {}
        elif isinstance(spec, dict):
            if "name" not in spec:
                raise ValueError(
                    f"a {self.kind} given as a dict needs a 'name' key; "
                    f"known {self.kind}s: {', '.join(self.names())}"
                )
            options = dict(spec)
            name = options.pop("name")
        else:
            return spec
        cls = self[name]
        accepted = list(parameters(cls))
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            valid = [p for p in accepted if p not in context]
            raise ValueError(
                f"unknown option(s) {', '.join(unknown)} for {self.kind} {name!r}; "
                f"valid options: {', '.join(valid) or 'none'}"
            )
        fixed = sorted(set(options) & set(context) & set(FIXED))
        if fixed:
            raise ValueError(
                f"{', '.join(fixed)}: set by the model, not an option of {self.kind} {name!r}; "
                f"remove it (give the model's {fixed[0]} instead)"
            )
        kwargs = {k: v for k, v in context.items() if k in accepted}
        kwargs.update(options)
        return cls(**kwargs)


def parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The constructor parameters of ``cls``, ``name → inspect.Parameter``; a constructor that
    passes ``**options`` on (the conditional VAE's to the VAE's) adds those of the class it
    passes them to."""
    params: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        more = False
        for name, p in list(inspect.signature(vars(klass)["__init__"]).parameters.items())[1:]:
            if p.kind is p.VAR_KEYWORD:
                more = True
            elif p.kind is not p.VAR_POSITIONAL:
                params.setdefault(name, p)
        if not more:
            break
    return params


class Recorded:
    """A base class whose instances keep the arguments they were built with, every default
    filled in (those of the classes ``**options`` go to as well), as ``build_options``, so
    that a run's ``config.yaml`` can say how to build the model again
    (:mod:`pyrovae.runs.describe`). Put it first among the bases:
    ``class VAE(Recorded, nn.Module)``."""

    build_options: dict[str, Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        self = super().__new__(cls)
        try:
            bound = inspect.signature(cls.__init__).bind(self, *args, **kwargs)
        except TypeError:  # not a constructor call (a copy), or arguments __init__ refuses
            return self
        given: dict[str, Any] = {}

        for name, value in list(bound.arguments.items())[1:]:
            kind = bound.signature.parameters[name].kind
            given.update(value if kind is inspect.Parameter.VAR_KEYWORD else {name: value})
        options = {}  # in the order of the signatures
        for name, p in parameters(cls).items():
            if name in given or p.default is not p.empty:
                options[name] = given.pop(name, p.default)
        object.__setattr__(self, "build_options", {**options, **given})
        return self
