"""Every scheme by name, with its metadata; ``get`` accepts jax, Keras and PyTorch names.

Name resolution, in order: an exact name or alias (``"he_uniform"``, ``"HeUniform"``,
``"kaiming_normal_"``), then the CamelCase → snake_case spelling (``"GlorotNormal"`` →
``"glorot_normal"``). A trailing underscore is PyTorch's in-place spelling and resolves to
the torch semantics (``"kaiming_normal_"`` → :func:`torch_kaiming_normal`, a plain normal),
while the bare name keeps jax's (``"kaiming_normal"`` → :func:`he_normal`, truncated).

Keras class names (``"VarianceScaling"``, ``"HeNormal"``, ``"Orthogonal"``, ...) resolve to
the same scheme's metadata, but :func:`get` builds them with Keras' own arguments, defaults
and fan rules (``jaxinit.initializers._keras``): ``get("VarianceScaling")`` is Keras' default
(scale 1, fan_in, truncated normal), ``get("Orthogonal", gain=2.0)`` takes Keras' ``gain``.
Likewise torch's ``"orthogonal_"`` takes ``gain`` and ``"constant_"`` takes ``val``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._checks import check_shape, default_float
from jaxinit._config import from_config
from jaxinit._types import Initializer
from jaxinit._values import Init, bound_options, initializer, use_registry
from jaxinit.initializers import _core, _torch
from jaxinit.initializers._protocol import with_out_sharding


@dataclass(frozen=True)
class Scheme:
    """Metadata of one initialization scheme.

    Attributes:
      name: canonical jaxinit name (the public function's name).
      factory: ``factory(**options) -> Initializer``.
      family: ``"constant"``, ``"random"``, ``"variance_scaling"``, ``"torch"``,
        ``"structured"``, ``"research"``...
      distribution: what the values are drawn from.
      variance: the variance (or bound) as a formula in fans and options.
      activations: activations the scheme suits (the seed documents' table and the papers).
      paper: the reference.
      aliases: other names that resolve to it (Keras, PyTorch, the literature).
      keyed: False for deterministic schemes that ignore the key.

    Example:
      >>> s = jaxinit.scheme("kaiming_normal")  # the registry's record, by any accepted name
      >>> isinstance(s, jaxinit.Scheme), s.name, s.family, s.variance
      (True, 'he_normal', 'variance_scaling', '2 / fan_in')
      >>> s.aliases, s.keyed
      (('kaiming_normal', 'HeNormal', 'KaimingNormal'), True)
      >>> s.factory()(jax.random.key(0), (64, 32)).shape  # factory(**options) -> Initializer
      (64, 32)
    """

    name: str
    factory: Callable[..., Initializer]
    family: str
    distribution: str
    variance: str
    activations: tuple[str, ...] = ()
    paper: str = ""
    aliases: tuple[str, ...] = ()
    keyed: bool = True
    notes: str = field(default="", compare=False)


_SCHEMES: dict[str, Scheme] = {}
_NAMES: dict[str, str] = {}  # every accepted spelling -> canonical name
# Keras and PyTorch spellings whose factory takes that library's own arguments (filled by
# jaxinit.initializers._keras and jaxinit.initializers._structured); the scheme's metadata is the one the alias names.
_SPELLINGS: dict[str, Callable[..., Initializer]] = {}


def register(scheme: Scheme, *, replace: bool = False) -> Scheme:
    """Add a scheme to the registry; its name and aliases must be new.

    Everything is checked before anything is recorded, so a failed ``register`` leaves the
    registry as it was: the metadata's types, the factory (callable), the aliases, and that
    no name or alias belongs to another scheme. A name that is already registered (a
    built-in scheme or one of your own) is replaced only with ``replace=True``; then the old
    scheme's aliases are dropped with it.

    >>> my_init = jaxinit.Scheme("he_normal", jaxinit.normal, "research", "normal", "σ²")
    >>> jaxinit.register(my_init)  # a built-in name: refused, nothing recorded
    Traceback (most recent call last):
    ...
    ValueError: register: 'he_normal' is a built-in scheme; pass replace=True to replace it, or choose another name

    With a new name (say ``"my_init"``) the same call records the scheme, and
    ``jaxinit.get("my_init", **options)`` builds it from then on.
    """
    _validate(scheme)
    old = _SCHEMES.get(scheme.name)
    if old is None and scheme.name in _NAMES:
        raise ValueError(
            f"register: name {scheme.name!r} is already an alias of {_NAMES[scheme.name]!r}"
        )
    if old is not None and not replace:
        kind = "a built-in scheme" if _is_builtin(old) else "already registered"
        raise ValueError(
            f"register: {scheme.name!r} is {kind}; pass replace=True to replace it, or choose"
            " another name"
        )
    dropped = set(old.aliases) if old is not None else set()
    for n in scheme.aliases:
        owner = _NAMES.get(n)
        if owner is not None and owner != scheme.name:
            raise ValueError(f"register: alias {n!r} already belongs to {owner!r}")
        if owner is None and n in _SCHEMES:
            raise ValueError(f"register: alias {n!r} is the name of another scheme")
    # Checked: now commit.
    for n in dropped:
        _NAMES.pop(n, None)
    for n in (scheme.name, *scheme.aliases):
        _NAMES[n] = scheme.name
    _SCHEMES[scheme.name] = scheme
    return scheme


def _is_builtin(s: Scheme) -> bool:
    return getattr(s.factory, "__module__", "").startswith("jaxinit.")


def _validate(s: Any) -> None:
    fn = "register"
    if not isinstance(s, Scheme):
        raise TypeError(f"{fn}: expected a jaxinit.Scheme, got {type(s).__name__}")
    if not isinstance(s.name, str) or not s.name.strip() or s.name != s.name.strip():
        raise ValueError(f"{fn}: name must be a non-empty string without spaces, got {s.name!r}")
    if not callable(s.factory):
        raise TypeError(f"{fn}: factory of {s.name!r} must be callable, got {s.factory!r}")
    for attr in ("family", "distribution", "variance", "paper", "notes"):
        if not isinstance(getattr(s, attr), str):
            raise TypeError(
                f"{fn}: {attr} of {s.name!r} must be a string, got {getattr(s, attr)!r}"
            )
    for attr in ("activations", "aliases"):
        value = getattr(s, attr)
        if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
            raise TypeError(
                f"{fn}: {attr} of {s.name!r} must be a tuple of non-empty strings, got {value!r}"
            )
    if len(set(s.aliases)) != len(s.aliases) or s.name in s.aliases:
        raise ValueError(f"{fn}: aliases of {s.name!r} repeat a name: {s.aliases!r}")
    if not isinstance(s.keyed, bool):
        raise TypeError(f"{fn}: keyed of {s.name!r} must be a bool, got {s.keyed!r}")


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip()).lower().replace("-", "_")


def scheme(name: str) -> Scheme:
    """The metadata of a scheme, by any accepted name. Raises ValueError with close matches.

    Example:
      >>> s = jaxinit.scheme("kaiming_normal")  # any accepted name
      >>> s.name
      'he_normal'
      >>> jaxinit.scheme("he_norm")
      Traceback (most recent call last):
      ValueError: jaxinit.get: unknown initializer 'he_norm'; did you mean ...
    """
    if not isinstance(name, str):
        raise TypeError(f"jaxinit.scheme: name must be a string, got {type(name).__name__}")
    for candidate in (name, name.strip(), _snake(name)):
        if candidate in _NAMES:
            return _SCHEMES[_NAMES[candidate]]
    close = difflib.get_close_matches(_snake(name), list(_NAMES), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"jaxinit.get: unknown initializer {name!r}{hint} (`jaxinit list` shows all "
        f"{len(_SCHEMES)} schemes)"
    )


def get(name: str | Initializer, *, safe_mode: bool = True, **options: Any) -> Initializer:
    """Return the initializer called ``name`` built with ``options``.

    A config dict (``get_config()``'s form) is rebuilt by :func:`jaxinit.from_config`, which
    never imports code; ``safe_mode=False`` lets a trusted config name unregistered
    functions.

    An initializer (any callable) is returned unchanged, so APIs can accept either. An array
    (numpy or jax) gives an initializer that returns it, cast to the requested dtype, for its
    own shape only (Keras' ``initializers.get(tensor)``).

    >>> jaxinit.get("he_uniform")  # jax / Keras name
    he_uniform()
    >>> jaxinit.get("HeUniform")  # Keras class name
    HeUniform()
    >>> jaxinit.get("kaiming_normal_", a=0.1)  # PyTorch name: torch semantics
    torch_kaiming_normal(a=0.1)
    >>> jaxinit.get("VarianceScaling", mode="fan_out")  # Keras name: Keras' defaults, args
    VarianceScaling(mode='fan_out')
    >>> jaxinit.get({"class_name": "he_normal", "config": {"layout": "torch"}})  # a config
    he_normal(layout='torch')
    """
    if isinstance(name, Mapping):
        if options:
            raise ValueError("jaxinit.get: options are only accepted with a scheme name")
        return from_config(name, safe_mode=safe_mode)
    if safe_mode is not True:
        raise TypeError(
            f"jaxinit.get: safe_mode={safe_mode!r} applies to a config dict only, got {name!r}"
        )
    if isinstance(name, np.ndarray | np.generic | jax.Array):
        if options:
            raise ValueError("jaxinit.get: options are only accepted with a scheme name")
        return _array_init(name)
    if callable(name) and not isinstance(name, str):
        if options:
            raise ValueError("jaxinit.get: options are only accepted with a scheme name")
        return name
    s = scheme(name)
    factory = _SPELLINGS.get(name.strip(), s.factory)
    try:
        built = factory(**options)
    except TypeError as e:
        raise TypeError(f"jaxinit.get({name!r}): bad options {sorted(options)}: {e}") from e
    if isinstance(built, Init) or not callable(built):
        return built
    # A factory of one's own returning a plain function: named by the spelling asked for,
    # with the options that differ from its defaults.
    return Init(
        name.strip() if name.strip() in _SPELLINGS else s.name,
        bound_options(factory, options),
        built,
    )


@initializer(name="array")
def _array_init(value: Any) -> Initializer:
    """``init(key, shape, dtype)`` returning ``value`` cast to ``dtype``; shape must be its own."""

    def init(key: Any, shape: Any, dtype: Any = None) -> jax.Array:
        shape = check_shape("jaxinit.get", shape)
        if shape != tuple(np.shape(value)):
            raise ValueError(
                f"jaxinit.get: Expected `shape` to be {tuple(np.shape(value))}, the shape of the"
                f" array given as the initializer; got shape={shape}"
            )
        return jnp.asarray(value, default_float() if dtype is None else dtype)

    return with_out_sharding("jaxinit.get", init)


def _torch_constant(val: Any = None, *, value: Any = None, dtype: Any = None) -> Initializer:
    """torch ``constant_(tensor, val)``: every entry ``val`` (``value=`` also accepted)."""
    if (val is None) == (value is None):
        raise TypeError("constant_: give the fill value, val (torch's name) or value")
    return _core.constant(value if val is None else val, dtype)


_SPELLINGS["constant_"] = _torch_constant


def schemes() -> tuple[Scheme, ...]:
    """All registered schemes, in registration order.

    Example:
      >>> all_schemes = jaxinit.schemes()
      >>> len(all_schemes) == len(jaxinit.names()), all_schemes[0].name
      (True, 'zeros')
    """
    return tuple(_SCHEMES.values())


def scheme_names() -> tuple[str, ...]:
    """The canonical names of all registered initializer schemes (:func:`schemes` gives
    their metadata; each also answers to its aliases in :func:`get`).

    Example:
      >>> "he_normal" in jaxinit.scheme_names(), "kaiming_normal" in jaxinit.scheme_names()
      (True, False)
    """
    return tuple(_SCHEMES)


names = scheme_names
"""The old name of :func:`scheme_names`, kept."""


# --------------------------------------------------------------------------- the core schemes
_GLOROT_ACTS = ("none", "tanh", "logistic", "softmax")
_HE_ACTS = ("relu", "leaky_relu", "prelu", "gelu", "silu")
_GLOROT = "Glorot & Bengio 2010, Understanding the difficulty of training deep FNNs"
_HE = "He et al. 2015, Delving deep into rectifiers"
_LECUN = "LeCun et al. 1998, Efficient BackProp; Klambauer et al. 2017 (SELU)"
_TORCH = "PyTorch torch.nn.init"

for _s in (
    Scheme(
        "zeros",
        lambda: _core.zeros,
        "constant",
        "constant",
        "0",
        aliases=("Zeros", "zero", "zeros_", "zeros_init"),
        keyed=False,
        notes="symmetry: all units stay identical",
    ),
    Scheme(
        "ones",
        lambda: _core.ones,
        "constant",
        "constant",
        "0 (all ones)",
        aliases=("Ones", "one", "ones_", "ones_init"),
        keyed=False,
    ),
    Scheme(
        "constant",
        _core.constant,
        "constant",
        "constant",
        "0 (all = value)",
        aliases=("Constant", "constant_"),
        keyed=False,
    ),
    Scheme(
        "normal",
        _core.normal,
        "random",
        "normal",
        "stddev² (0.01²)",
        notes="jax.nn.initializers.normal",
    ),
    Scheme(
        "uniform",
        _core.uniform,
        "random",
        "uniform [0, scale)",
        "scale²/12 (mean scale/2)",
        notes="jax.nn.initializers.uniform: not centred",
    ),
    Scheme(
        "truncated_normal",
        _core.truncated_normal,
        "random",
        "truncated_normal (bounds in σ)",
        "≈ 0.774·stddev² for ±2σ",
    ),
    Scheme(
        "random_normal",
        _core.random_normal,
        "random",
        "normal",
        "stddev² (0.05²)",
        aliases=("RandomNormal",),
        notes="Keras RandomNormal",
    ),
    Scheme(
        "random_uniform",
        _core.random_uniform,
        "random",
        "uniform [minval, maxval)",
        "(maxval − minval)²/12 (0.1²/12)",
        aliases=("RandomUniform",),
        notes="Keras RandomUniform",
    ),
    Scheme(
        "random_truncated_normal",
        _core.random_truncated_normal,
        "random",
        "truncated_normal (mean ± 2σ)",
        "≈ 0.774·stddev²",
        aliases=("TruncatedNormal",),
        notes="Keras TruncatedNormal",
    ),
    Scheme(
        "variance_scaling",
        _core.variance_scaling,
        "variance_scaling",
        "truncated_normal | normal | uniform",
        "scale / fan(mode)",
        aliases=("VarianceScaling",),
    ),
    Scheme(
        "glorot_uniform",
        _core.glorot_uniform,
        "variance_scaling",
        "uniform",
        "2 / (fan_in + fan_out)",
        _GLOROT_ACTS,
        _GLOROT,
        aliases=("xavier_uniform", "GlorotUniform", "XavierUniform"),
    ),
    Scheme(
        "glorot_normal",
        _core.glorot_normal,
        "variance_scaling",
        "truncated_normal",
        "2 / (fan_in + fan_out)",
        _GLOROT_ACTS,
        _GLOROT,
        aliases=("xavier_normal", "GlorotNormal", "XavierNormal"),
    ),
    Scheme(
        "he_uniform",
        _core.he_uniform,
        "variance_scaling",
        "uniform",
        "2 / fan_in",
        _HE_ACTS,
        _HE,
        aliases=("kaiming_uniform", "HeUniform", "KaimingUniform"),
    ),
    Scheme(
        "he_normal",
        _core.he_normal,
        "variance_scaling",
        "truncated_normal",
        "2 / fan_in",
        _HE_ACTS,
        _HE,
        aliases=("kaiming_normal", "HeNormal", "KaimingNormal"),
    ),
    Scheme(
        "lecun_uniform",
        _core.lecun_uniform,
        "variance_scaling",
        "uniform",
        "1 / fan_in",
        ("selu",),
        _LECUN,
        aliases=("LecunUniform", "LeCunUniform"),
    ),
    Scheme(
        "lecun_normal",
        _core.lecun_normal,
        "variance_scaling",
        "truncated_normal",
        "1 / fan_in",
        ("selu",),
        _LECUN,
        aliases=("LecunNormal", "LeCunNormal"),
    ),
    Scheme(
        "glorot_bengio_standard",
        _core.glorot_bengio_standard,
        "variance_scaling",
        "uniform [±1/√fan_in]",
        "1 / (3·fan_in)",
        (),
        _GLOROT + " (eq. 1, 'standard')",
        aliases=("standard_uniform_heuristic",),
    ),
    Scheme(
        "torch_kaiming_uniform",
        _torch.torch_kaiming_uniform,
        "torch",
        "uniform",
        "gain² / fan(mode)",
        _HE_ACTS,
        _TORCH,
        aliases=("kaiming_uniform_",),
    ),
    Scheme(
        "torch_kaiming_normal",
        _torch.torch_kaiming_normal,
        "torch",
        "normal",
        "gain² / fan(mode)",
        _HE_ACTS,
        _TORCH,
        aliases=("kaiming_normal_",),
    ),
    Scheme(
        "torch_xavier_uniform",
        _torch.torch_xavier_uniform,
        "torch",
        "uniform",
        "gain² · 2 / (fan_in + fan_out)",
        _GLOROT_ACTS,
        _TORCH,
        aliases=("xavier_uniform_",),
    ),
    Scheme(
        "torch_xavier_normal",
        _torch.torch_xavier_normal,
        "torch",
        "normal",
        "gain² · 2 / (fan_in + fan_out)",
        _GLOROT_ACTS,
        _TORCH,
        aliases=("xavier_normal_",),
    ),
    Scheme(
        "torch_default_kernel",
        _torch.torch_default_kernel,
        "torch",
        "uniform [±1/√fan_in]",
        "1 / (3·fan_in)",
        (),
        _TORCH + " nn.Linear / nn.ConvNd reset_parameters",
        aliases=("torch_default",),
    ),
    Scheme(
        "torch_default_bias",
        _torch.torch_default_bias,
        "torch",
        "uniform [±1/√fan_in of the weight]",
        "1 / (3·fan_in)",
        (),
        _TORCH,
    ),
    Scheme(
        "torch_uniform",
        _torch.torch_uniform,
        "torch",
        "uniform [a, b)",
        "(b − a)²/12",
        aliases=("uniform_",),
    ),
    Scheme("torch_normal", _torch.torch_normal, "torch", "normal", "std²", aliases=("normal_",)),
    Scheme(
        "torch_trunc_normal",
        _torch.torch_trunc_normal,
        "torch",
        "truncated_normal (absolute [a, b])",
        "< std²",
        aliases=("trunc_normal_",),
    ),
):
    register(_s)

use_registry(get)  # from_config and unpickling fall back on the registry's names
