"""Initializers are values: named, immutable, comparable, serialisable (a bottom module:
initializers and rules both make values).

Every factory of jaxinit (``he_normal(...)``, ``torch_kaiming_uniform(...)``,
``orthogonal(...)``, ``fast(init)``, ``draw_in_float32(init)``...) is decorated with
:func:`initializer`, which binds the call's arguments to the factory's signature, calls the
factory unchanged to build the drawing function, and returns an :class:`Init`: a frozen value
that holds the scheme's name, the options that differ from the defaults, and that function.
Calling it calls the function with the same arguments, so the numbers are exactly the ones
the plain function draws (nothing changed numerically), and it works wherever a function
``init(key, shape, dtype)`` does: flax.linen and flax.nnx ``kernel_init=``, ``jax.jit``,
``jax.vmap``.

What a value adds:

* equality and hashing by (name, options): two ``he_normal()`` are equal and hash alike, so
  caches keyed on them (the study engine's compiled programs) are reused;
* ``repr``: ``he_normal(layout='torch')``, only the options that differ from the defaults;
  ``__name__``: the scheme's name (``"he_normal"``);
* ``get_config()``: a JSON-able ``{"module": "jaxinit", "class_name": name, "config":
  {options}}`` (the shape ``keras.initializers.serialize`` writes), and
  ``jaxinit.from_config`` / ``jaxinit.get(config)`` (:mod:`jaxinit._config`, which never
  imports code) to rebuild an equal value;
* pickling: a value pickles as its name and options and is rebuilt by its factory.

Rule sets (:func:`jaxinit.gpt2`, ...) return a :class:`RuleSet`, a ``dict`` that also knows
its factory and options; :class:`jaxinit.ContextRule` compares by its build function's code
and captured values.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import types
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from jaxinit._law import Fans, Law, law_of

_MODULE = "jaxinit"

# Every decorated factory by the name its values carry: from_config and unpickling find the
# factory here first, then in the registry (jaxinit.get), which also knows Keras' and
# PyTorch's spellings and user-registered schemes.
_FACTORIES: dict[str, Callable[..., Any]] = {}
_PLAIN: dict[str, Init] = {}  # module-level initializers (zeros, ones): name -> value
# Rule classes by config name, registered by the rules layer when it is imported
# (jaxinit.rules._rules: ContextRule), so this module builds and recognises rules without
# importing the layer above it.
RULE_TYPES: dict[str, type[Any]] = {}
# The registry's lookup (jaxinit.initializers.get: Keras' and PyTorch's spellings, user
# schemes), handed over by jaxinit.initializers._registry when it is imported (importing
# jaxinit imports it), so that this bottom module never imports the layer above it.
_registry_get: Callable[..., Any] | None = None


def use_registry(get: Callable[..., Any]) -> None:
    """Make ``get(name, **options)`` the last resort of :func:`build_value`."""
    global _registry_get
    _registry_get = get


# --------------------------------------------------------------------------- option identity


def _dtype_name(value: Any) -> str | None:
    """The dtype's name if ``value`` is a dtype or a scalar type (np/jnp.float32), else None."""
    if isinstance(value, np.dtype) or (
        isinstance(value, type) and (issubclass(value, np.generic) or hasattr(value, "dtype"))
    ):
        try:
            return np.dtype(jax.numpy.dtype(value)).name
        except TypeError:
            return None
    return None


def freeze(value: Any) -> Any:
    """A hashable stand-in for an option value that is equal exactly when the values are.

    Lists and tuples compare as tuples, dicts by sorted items, arrays by dtype, shape and
    bytes, dtypes and scalar types (``jnp.float32``, ``np.float32``, ``"float32"`` for a
    ``dtype`` option) by name, functions by module, qualified name, code and captured values
    (two closures made by the same code over equal values are equal), ``functools.partial``
    by its parts. Other hashable objects stand for themselves; unhashable ones by identity.
    """
    if value is None or isinstance(value, bool | int | float | complex | str | bytes):
        return value
    if isinstance(value, np.generic):
        return (
            value.item() if value.dtype.kind != "V" else ("np", value.dtype.name, value.tobytes())
        )
    name = _dtype_name(value)
    if name is not None:
        return ("dtype", name)
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, Mapping) and not isinstance(value, RuleSet):
        items = [(freeze(k), freeze(v)) for k, v in value.items()]
        return ("dict", tuple(sorted(items, key=repr)))
    if isinstance(value, np.ndarray) or (
        isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer)
    ):
        a = np.asarray(value)
        return ("array", a.dtype.name, a.shape, a.tobytes())
    if isinstance(value, functools.partial):
        return ("partial", freeze(value.func), freeze(value.args), freeze(value.keywords))
    if isinstance(value, types.FunctionType):
        if id(value) in _FREEZING:  # a recursive closure: stand for itself inside itself
            return ("recursive", value.__module__, value.__qualname__)
        _FREEZING.add(id(value))
        try:
            cells = tuple(_cell(c) for c in value.__closure__ or ())
        finally:
            _FREEZING.discard(id(value))
        return (
            "function",
            value.__module__,
            value.__qualname__,
            value.__code__,
            cells,
            freeze(value.__defaults__),
            freeze(value.__kwdefaults__),
        )
    if isinstance(value, types.MethodType):
        return ("method", freeze(value.__self__), value.__func__)
    try:
        hash(value)
    except TypeError:
        return ("object", type(value).__qualname__, id(value))
    return value


_FREEZING: set[int] = set()


def _cell(cell: Any) -> Any:
    try:
        return freeze(cell.cell_contents)
    except ValueError:  # an empty cell (a name assigned after the closure was made)
        return ("empty cell",)


def frozen_options(options: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(
        (k, ("dtype", _dtype_name_or_str(v)) if k == "dtype" and v is not None else freeze(v))
        for k, v in options.items()
    )


def _dtype_name_or_str(v: Any) -> Any:
    try:
        return np.dtype(jax.numpy.dtype(v)).name
    except TypeError:
        return freeze(v)


def _same(a: Any, b: Any) -> bool:
    try:
        return freeze(a) == freeze(b)
    except Exception:
        return False


# --------------------------------------------------------------------------- JSON config


def _encode(where: str, value: Any) -> Any:
    """A JSON-able form of an option value; jaxinit._config decodes it."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    name = _dtype_name(value)
    if name is not None:
        return name
    if isinstance(value, list):
        return [_encode(where, v) for v in value]
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(where, v) for v in value]}
    if hasattr(value, "get_config") and callable(value.get_config):
        return value.get_config()
    if isinstance(value, np.ndarray | jax.Array):
        a = np.asarray(value)
        floating = bool(jax.numpy.issubdtype(a.dtype, jax.numpy.floating))
        if not floating and a.dtype.kind not in "biu":
            raise TypeError(f"get_config: {where} is an array of dtype {a.dtype}, not JSON-able")
        data = a.astype(np.float64) if floating else a  # exact for every float dtype
        return {"__ndarray__": data.tolist(), "dtype": a.dtype.name}
    if isinstance(value, types.FunctionType | types.BuiltinFunctionType):
        path = f"{value.__module__}:{value.__qualname__}"
        if import_path(path) is not value:
            raise TypeError(
                f"get_config: {where} is the function {value.__qualname__!r}, which cannot be"
                " imported by its name (a local function or lambda); use a module-level function"
            )
        return {"__function__": path}
    raise TypeError(
        f"get_config: {where} = {value!r} ({type(value).__name__}) has no JSON form; options"
        " must be numbers, strings, None, lists, tuples, arrays, dtypes, initializers or"
        " module-level functions"
    )


def import_path(path: str) -> Any:
    module, _, qualname = path.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return obj


def config_dict(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    config = {k: _encode(f"option {k!r} of {name}", v) for k, v in options.items()}
    return {"module": _MODULE, "class_name": name, "config": config}


def build_value(name: str, options: Mapping[str, Any]) -> Any:
    if name in _FACTORIES:
        return _FACTORIES[name](**options)
    if name in _PLAIN:
        if options:
            raise ValueError(f"from_config: {name} takes no options, got {sorted(options)}")
        return _PLAIN[name]
    if name in RULE_TYPES:
        return RULE_TYPES[name](**options)
    if _registry_get is None:
        raise LookupError(f"from_config: no registry to look {name!r} up in; import jaxinit")
    return _registry_get(name, **options)


# --------------------------------------------------------------------------- the value


class Init:
    """An initializer as a value: ``init(key, shape, dtype=...) -> jax.Array``.

    Made by jaxinit's factories; holds the scheme's ``name``, its non-default ``options``
    and the function that draws. Immutable; equal (and equally hashed) when name and
    options are; ``repr`` is the call that makes it; ``get_config()`` its JSON form.

    >>> jaxinit.he_normal(layout="torch")
    he_normal(layout='torch')
    >>> jaxinit.he_normal() == jaxinit.he_normal()
    True
    """

    __slots__ = ("__weakref__", "_fn", "_hash", "_key", "_law", "_name", "_options")
    _fn: Callable[..., Any]
    _hash: int
    _key: tuple[str, tuple[tuple[str, Any], ...]]
    _law: Law
    _name: str
    _options: Mapping[str, Any]

    def __init__(
        self,
        name: str,
        options: Mapping[str, Any],
        fn: Callable[..., Any],
        law: Law | None = None,
    ):
        if not callable(fn):
            raise TypeError(f"Init: fn must be callable, got {fn!r}")
        if law is not None and not isinstance(law, Law):
            raise TypeError(f"Init: law must be a jaxinit law, got {law!r}")
        key = (name, frozen_options(options))
        for attr, value in (
            ("_name", name),
            ("_options", types.MappingProxyType(dict(options))),
            ("_fn", fn),
            ("_law", law_of(fn) if law is None else law),
            ("_key", key),
            ("_hash", hash(key)),
        ):
            object.__setattr__(self, attr, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self!r} is immutable; build a new one with other options")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{self!r} is immutable")

    @property
    def law(self) -> Law:
        """What the initializer declares about its draw (:mod:`jaxinit._law`): a
        variance-scaling law's scale, mode, distribution and axes, a uniform's bounds, a
        fan-free normal's std... The rules layer reads only this."""
        return self._law

    def fans(self, shape: tuple[int, ...]) -> Fans | None:
        """The ``(fan_in, fan_out)`` the law uses when called on ``shape`` (``None``: a
        fan-free draw).

        >>> jaxinit.he_normal().fans((3, 3, 16, 32))
        (144.0, 288.0)
        """
        return self._law.fans(tuple(shape))

    def describe(self, fans: Fans | None = None) -> str:
        """The std or bound of a draw with ``fans`` (``"std 0.02"``, ``"bound 0.125"``).

        >>> init = jaxinit.he_uniform()
        >>> init.describe(init.fans((16, 32)))
        'bound 0.6124'
        """
        return self._law.describe(fans)

    def with_fans(self, fans: Fans) -> Init:
        """The same initializer, declared as computed from a layer's ``fans`` (a rule that
        took a bound :math:`1/\\sqrt{n_{in}}` from the layer): the rules then know that
        its draw depends on the layer, and ``explain`` shows those fans."""
        return Init(self._name, self._options, self._fn, self._law.with_fans(fans))

    @property
    def name(self) -> str:
        """The scheme's name (``"he_normal"``, ``"HeNormal"``, ``"fast"``)."""
        return self._name

    @property
    def __name__(self) -> str:
        return self._name

    @property
    def options(self) -> Mapping[str, Any]:
        """The options given that differ from the factory's defaults (read-only)."""
        return self._options

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self._fn)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Init):
            return NotImplemented
        return self._hash == other._hash and self._key == other._key

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        if self._name in _PLAIN and _PLAIN[self._name] is self:
            return self._name
        args = ", ".join(f"{k}={v!r}" for k, v in self._options.items())
        return f"{self._name}({args})"

    def get_config(self) -> dict[str, Any]:
        """``{"module": "jaxinit", "class_name": name, "config": {options}}``, JSON-able."""
        return config_dict(self._name, self._options)

    def __reduce__(self) -> tuple[Any, ...]:
        if self._name in _PLAIN and _PLAIN[self._name] is self:
            return (_plain, (self._name,))
        return (build_value, (self._name, dict(self._options)))


class Declared:
    """A drawing function with the law it follows, as an initializer factory returns it;
    the :func:`initializer` decorator makes it an :class:`Init` carrying that law. Callable
    like the function, so a factory's helpers may use it directly."""

    __slots__ = ("fn", "law")
    fn: Callable[..., Any]
    law: Law

    def __init__(self, fn: Callable[..., Any], law: Law):
        if isinstance(fn, Declared | Init):
            fn = fn._fn if isinstance(fn, Init) else fn.fn
        self.fn = fn
        self.law = law

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


def declare(fn: Callable[..., Any], law: Law) -> Declared:
    """``fn`` declared to draw by ``law`` (see :mod:`jaxinit._law`)."""
    return Declared(fn, law)


def declared(name: str, fn: Callable[..., Any], law: Law, **options: Any) -> Init:
    """An :class:`Init` named ``name`` that draws with ``fn`` by ``law`` (for a rule set's
    own drawing functions: a padded table, fused gate blocks)."""
    return Init(name, options, fn, law)


def _plain(name: str) -> Init:
    return _PLAIN[name]


class RuleSet(dict):
    """A rule set: the ``{pattern: initializer}`` dict :func:`jaxinit.reinit` takes, which
    also knows the factory and options that made it (``name``, ``options``,
    ``get_config()``). It is a plain dict otherwise: print, edit or merge it; an edited rule
    set is no longer what its config says, so ``get_config()`` then raises.

    Example:
      >>> rules = jaxinit.fixup(num_blocks=4)  # every rule set factory returns one
      >>> isinstance(rules, jaxinit.RuleSet), rules.name, dict(rules.options)
      (True, 'fixup', {'num_blocks': 4})
      >>> rules.get_config()
      {'module': 'jaxinit', 'class_name': 'fixup', 'config': {'num_blocks': 4}}
      >>> params = {"block_0": {"conv": {"kernel": jnp.ones((8, 8))},
      ...                       "out": {"kernel": jnp.ones((8, 8))}},
      ...           "head": {"kernel": jnp.ones((8, 10)), "bias": jnp.ones(10)}}
      >>> params = jaxinit.reinit(params, rules, jax.random.key(0))  # used as a plain dict
      >>> float(jnp.abs(params["head"]["kernel"]).max())
      0.0
    """

    def __init__(self, rules: Mapping[Any, Any], name: str, options: Mapping[str, Any]):
        super().__init__(rules)
        self.name = name
        self.options = types.MappingProxyType(dict(options))

    def _rebuilt(self) -> Any:
        return build_value(self.name, dict(self.options))

    def get_config(self) -> dict[str, Any]:
        """``{"module": "jaxinit", "class_name": name, "config": {options}}``, JSON-able."""
        if dict(self) != dict(self._rebuilt()):
            raise ValueError(
                f"get_config: this {self.name} rule set was edited after it was made, so its"
                " options no longer describe it; build the rules from a config of your own"
            )
        return config_dict(self.name, self.options)

    def __reduce__(self) -> tuple[Any, ...]:
        if dict(self) == dict(self._rebuilt()):
            return (build_value, (self.name, dict(self.options)))
        return (dict, (dict(self),))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{self.name}({args}) = {dict.__repr__(self)}"


# --------------------------------------------------------------------------- the decorator


def initializer(factory: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Decorate an initializer factory so that it returns values.

    The call's arguments are bound to the factory's signature (defaults applied), the
    factory is called unchanged, and its result becomes an :class:`Init` (a function), a
    named :class:`jaxinit.ContextRule` (a rule) or a :class:`RuleSet` (a dict of rules),
    carrying ``name`` (the factory's own by default) and the options that differ from the
    defaults. A result that already is such a value is returned as it is.
    """
    if factory is None:
        return functools.partial(initializer, name=name)
    scheme_name = name or factory.__name__
    sig = inspect.signature(factory)
    if any(p.kind is p.VAR_POSITIONAL for p in sig.parameters.values()):
        raise TypeError(f"initializer: {scheme_name} takes *args, which cannot be named")

    @functools.wraps(factory)
    def make(*args: Any, **kwargs: Any) -> Any:
        built = factory(*args, **kwargs)
        return _as_value(scheme_name, _options(sig, args, kwargs), built)

    _FACTORIES[scheme_name] = make
    return make


def _options(sig: inspect.Signature, args: tuple, kwargs: dict) -> dict[str, Any]:
    bound = sig.bind(*args, **kwargs)
    options: dict[str, Any] = {}
    for pname, param in sig.parameters.items():
        if pname not in bound.arguments:
            continue
        value = bound.arguments[pname]
        if param.kind is param.VAR_KEYWORD:
            options.update(value)
        elif param.default is param.empty or not _same(value, param.default):
            options[pname] = value
    return options


def bound_options(factory: Callable[..., Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``factory(**kwargs)`` that differ from its defaults (all of them when
    its signature cannot be read)."""
    try:
        sig = inspect.signature(factory)
        return _options(sig, (), dict(kwargs))
    except (TypeError, ValueError):
        return dict(kwargs)


def _is_rule(value: Any) -> bool:
    return isinstance(value, tuple(RULE_TYPES.values()))


def _as_value(name: str, options: dict[str, Any], built: Any) -> Any:
    if _is_rule(built):
        built._spec = (name, types.MappingProxyType(options))
        return built
    if isinstance(built, Mapping):
        for rule in built.values():  # a rule set's own rules: layered by design (see reinit)
            if _is_rule(rule) and getattr(rule, "_rule_set", None) is None:
                rule._rule_set = name
        return RuleSet(built, name, options)
    if isinstance(built, Init) and built._name == name and built._key[1] == frozen_options(options):
        return built
    if isinstance(built, Declared):
        return Init(name, options, built.fn, built.law)
    if isinstance(built, Init):  # another value under this name (Keras' Orthogonal)
        return Init(name, options, built, built.law)
    return Init(name, options, built)


def plain_initializer(law: Law) -> Callable[[Callable[..., Any]], Init]:
    """Make a module-level initializer function (``zeros``, ``ones``) a named value
    declaring ``law``."""

    def make(fn: Callable[..., Any]) -> Init:
        value = Init(fn.__name__, {}, fn, law)
        _PLAIN[fn.__name__] = value
        return value

    return make


def label(init: Any) -> str:
    """A short label for an initializer spec: a name as given, a value's repr, else the
    function's name."""
    if isinstance(init, str):
        return init
    if isinstance(init, Init):
        return repr(init)
    return getattr(init, "__name__", repr(init))
