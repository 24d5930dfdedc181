"""Configs are data: decoding a ``get_config()`` dict never imports or runs anything (a bottom
module beside :mod:`jaxinit._values`, which encodes them).

A config names what to build by ``class_name``; :func:`from_config` builds only names that
jaxinit itself registers: its factories, its rule types (``ContextRule``) and the registry's
schemes (:func:`jaxinit.get`'s names, with those added by :func:`jaxinit.register`). An option
that is a function (``{"__function__": "module:qualname"}``, a ``ContextRule``'s ``build``, a
``fans=`` function) is resolved only if it was registered in this process with
:func:`register_function`; anything else is refused with an error naming the entry, unless
the caller opts in with ``safe_mode=False`` (Keras' word: then the module is imported, as
``keras.saving`` does outside safe mode). Configs are bounded: at most :data:`MAX_DEPTH`
levels of nesting and :data:`MAX_ENTRIES` entries, checked before anything is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from jaxinit._values import build_value, import_path

MAX_DEPTH = 64  # nesting levels of a config (an array of rank r uses r of them)
MAX_ENTRIES = 4_000_000  # values in a config, array elements included

# Functions a config may name, by "module:qualname" (what get_config writes).
_FUNCTIONS: dict[str, Callable[..., Any]] = {}
_ARRAY_KINDS = "biuf"  # bool, signed and unsigned integers, floats: what get_config writes


def function_path(fn: Any) -> str:
    """``"module:qualname"``, the name a config gives a function."""
    return f"{getattr(fn, '__module__', None)}:{getattr(fn, '__qualname__', None)}"


def register_function(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Allow configs to name ``fn`` (a module-level function) as an option, in this process.

    A config is data, so :func:`jaxinit.from_config` resolves ``{"__function__":
    "module:qualname"}`` entries (a ``ContextRule``'s ``build``, ``fans=``) only for
    functions registered here; ``fn`` is returned, so this works as a decorator.

    >>> def my_bias(info):
    ...     return jaxinit.torch_default_bias(kernel_shape=info.siblings["kernel"])
    >>> config = {"class_name": "ContextRule", "config": {"build": {"__function__": "x:my_bias"}}}
    >>> jaxinit.from_config(config)
    Traceback (most recent call last):
    ...
    ValueError: from_config: config['config']['build'] names the function 'x:my_bias', which was not registered; a config is data and never imports code: call jaxinit.register_function(my_bias) first, or pass safe_mode=False if you trust this config
    """
    if not callable(fn) or not isinstance(getattr(fn, "__qualname__", None), str):
        raise TypeError(f"register_function: fn must be a named function, got {fn!r}")
    qualname = fn.__qualname__
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise ValueError(
            f"register_function: {qualname!r} is a local function or lambda, which a config"
            " cannot name; define it at module level"
        )
    _FUNCTIONS[function_path(fn)] = fn
    return fn


def from_config(config: Mapping[str, Any], *, safe_mode: bool = True) -> Any:
    """Rebuild an initializer, rule or rule set from its ``get_config()`` dict.

    Accepts Keras' shape, ``{"class_name": name, "config": {options}}`` (``"name"`` is also
    accepted for ``"class_name"``); the name is any jaxinit factory or registry name,
    Keras class names included (``{"class_name": "HeNormal", "config": {}}``).

    A config is data: it builds only what jaxinit registers, and a function option
    (``{"__function__": "module:qualname"}``) only if it was registered with
    :func:`jaxinit.register_function`. ``safe_mode=False`` (for a config you trust) imports
    the named module instead. Configs deeper than 64 levels or larger than 4 million
    entries are refused.

    >>> init = jaxinit.he_normal(layout="torch")
    >>> jaxinit.from_config(init.get_config()) == init
    True
    >>> jaxinit.from_config({"class_name": "constant", "config": {"value": {"__function__": "os:system"}}})
    Traceback (most recent call last):
    ...
    ValueError: from_config: config['config']['value'] names the function 'os:system', which was not registered; a config is data and never imports code: call jaxinit.register_function(system) first, or pass safe_mode=False if you trust this config
    """
    if not isinstance(safe_mode, bool):
        raise TypeError(f"from_config: safe_mode must be True or False, got {safe_mode!r}")
    if not isinstance(config, Mapping):
        raise TypeError(f"from_config: config must be a dict, got {type(config).__name__}")
    check_size("from_config", config)
    return _build("config", config, safe_mode)


def check_size(fn: str, config: Any) -> None:
    """Refuse a config nested deeper than :data:`MAX_DEPTH` or with more than
    :data:`MAX_ENTRIES` values (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(config, 0)]
    entries = 0
    while stack:
        value, depth = stack.pop()
        entries += 1
        if entries > MAX_ENTRIES:
            raise ValueError(f"{fn}: the config has more than {MAX_ENTRIES} entries; refused")
        if isinstance(value, Mapping | list | tuple):
            if depth >= MAX_DEPTH:
                raise ValueError(
                    f"{fn}: the config is nested deeper than {MAX_DEPTH} levels; refused"
                )
            children = value.values() if isinstance(value, Mapping) else value
            stack.extend((v, depth + 1) for v in children)


def _build(where: str, config: Mapping[str, Any], safe: bool) -> Any:
    name = config.get("class_name", config.get("name"))
    if not isinstance(name, str):
        raise ValueError(
            f"from_config: {where} needs a 'class_name' (or 'name') string, got keys"
            f" {sorted(map(str, config))}"
        )
    options = config.get("config") or {}
    if not isinstance(options, Mapping):
        raise TypeError(f"from_config: {where}['config'] must be a dict, got {options!r}")
    bad = [k for k in options if not isinstance(k, str)]
    if bad:
        raise TypeError(f"from_config: {where}['config'] has keys that are not strings: {bad}")
    decoded = {k: _decode(f"{where}['config'][{k!r}]", v, safe) for k, v in options.items()}
    return build_value(name, decoded)


def _decode(where: str, value: Any, safe: bool) -> Any:
    if isinstance(value, list):
        return [_decode(f"{where}[{i}]", v, safe) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if "__tuple__" in value:
        _only(where, value, "__tuple__")
        items = value["__tuple__"]
        if not isinstance(items, list):
            raise TypeError(f"from_config: {where}['__tuple__'] must be a list, got {items!r}")
        return tuple(_decode(f"{where}[{i}]", v, safe) for i, v in enumerate(items))
    if "__ndarray__" in value:
        return _array(where, value)
    if "__function__" in value:
        _only(where, value, "__function__")
        return _function(where, value["__function__"], safe)
    if ("class_name" in value or "name" in value) and "config" in value:
        return _build(where, value, safe)
    return {k: _decode(f"{where}[{k!r}]", v, safe) for k, v in value.items()}


def _only(where: str, value: dict, *keys: str) -> None:
    extra = sorted(map(str, set(value) - set(keys)))
    if extra:
        raise ValueError(f"from_config: {where} has keys {extra} beside {list(keys)}")


def _array(where: str, value: dict) -> np.ndarray:
    _only(where, value, "__ndarray__", "dtype")
    if "dtype" not in value:
        raise ValueError(
            f"from_config: {where} is an array without a 'dtype'; get_config writes"
            ' {"__ndarray__": [...], "dtype": "float32"}'
        )
    dtype_name = value["dtype"]
    try:
        dtype = np.dtype(jax.numpy.dtype(dtype_name)) if isinstance(dtype_name, str) else None
    except TypeError:
        dtype = None
    if dtype is None or (dtype.kind not in _ARRAY_KINDS and dtype.name != "bfloat16"):
        raise ValueError(
            f"from_config: {where}['dtype'] = {dtype_name!r} is not a numeric dtype name"
            " (bool, int8 ... uint64, bfloat16, float16, float32, float64)"
        )
    stack = [value["__ndarray__"]]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif not isinstance(item, bool | int | float):
            raise TypeError(
                f"from_config: {where}['__ndarray__'] holds {item!r}; an array's data is"
                " nested lists of numbers"
            )
    try:
        return np.asarray(value["__ndarray__"], dtype=dtype)
    except (ValueError, OverflowError, TypeError) as e:
        raise ValueError(
            f"from_config: {where}['__ndarray__'] is not a {dtype.name} array"
            f" (ragged lists or values out of range): {e}"
        ) from None


def _function(where: str, path: Any, safe: bool) -> Callable[..., Any]:
    if not isinstance(path, str) or path.count(":") != 1:
        raise ValueError(
            f"from_config: {where}['__function__'] must be a 'module:qualname' string, got {path!r}"
        )
    if path in _FUNCTIONS:
        return _FUNCTIONS[path]
    if safe:
        short = path.rpartition(":")[2].rpartition(".")[2]
        raise ValueError(
            f"from_config: {where} names the function {path!r}, which was not registered; a"
            f" config is data and never imports code: call jaxinit.register_function({short})"
            " first, or pass safe_mode=False if you trust this config"
        )
    obj = import_path(path)  # safe_mode=False: the caller trusts this config
    if not callable(obj):
        raise ValueError(f"from_config: {where}: cannot import the function {path!r}")
    return obj
