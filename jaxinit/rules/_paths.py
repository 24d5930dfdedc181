"""Path matching: a parameter's "/"-joined path, and the glob patterns rules match it with.

Patterns (a string is a glob over the "/"-joined path):

* ``*`` matches within one path segment, ``?`` one character, ``[ab]`` a class,
  ``{kernel,weight}`` either alternative, and a whole segment ``**`` any number of segments
  (zero included).
* A pattern matches the whole path *or any trailing run of its segments*, so ``"kernel"``
  is every kernel, ``"Dense_*/bias"`` matches ``"params/Dense_0/bias"`` in a linen
  variables dict, and ``"block_*/**/kernel"`` every kernel inside any block. A leading
  ``/`` anchors the pattern at the root (``"/Dense_0/kernel"``).
* A compiled ``re.Pattern`` is matched against the whole path (``fullmatch``).
* Every alternative of a ``{a,b}`` group must match some parameter; :func:`any_of` needs
  only one of them.

Also: a leaf's own key (:func:`path_key`) and the layer index and depth read from the
integers in paths (:func:`_path_layers`).
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Sequence
from typing import Any

import jax

from jaxinit._types import Pattern


def any_of(*patterns: Pattern) -> re.Pattern:
    """A pattern that matches a path when any of ``patterns`` does, without requiring that
    each alternative match something: for "whichever of these names the model uses".

    A ``{a,b}`` glob given to :func:`reinit` names parameters that must *all* exist (each
    alternative has to match, or the rule is an error); inside ``any_of`` its alternatives
    are just choices. The result is a compiled ``re.Pattern`` (matched like any
    ``re.Pattern`` rule: the whole path), so it can be a rule's key. Rule sets use it for
    names that differ between frameworks (``kernel`` in flax, ``weight`` in Equinox).

    Args:
      patterns: globs (the syntax of :func:`reinit`, ``{a,b}``, ``**``, a leading ``/``)
        or ``re.Pattern`` (its flags are not kept).

    >>> jaxinit.any_of("qkv/{kernel,weight}").fullmatch("blocks_0/attn/qkv/kernel") is not None
    True
    >>> rules = {jaxinit.any_of("{kernel,weight}"): jaxinit.he_normal()}  # flax or Equinox
    """
    if not patterns:
        raise ValueError("any_of: give at least one pattern (a glob string or re.Pattern)")
    parts = []
    for p in patterns:
        if isinstance(p, re.Pattern):
            parts.append(p.pattern)
        elif isinstance(p, str):
            parts.append(_glob_regex(p).pattern)
        else:
            raise TypeError(f"any_of: a pattern must be a glob string or re.Pattern, got {p!r}")
    compiled = re.compile(parts[0] if len(parts) == 1 else "|".join(f"(?:{x})" for x in parts))
    _WRITTEN.setdefault(compiled, f"any_of({', '.join(_written(p) for p in patterns)})")
    return compiled


# The patterns any_of was given, by the compiled pattern it returned: errors and explain
# show a rule's pattern as it was written.
_WRITTEN: dict[re.Pattern, str] = {}


def _written(pattern: Pattern) -> str:
    if isinstance(pattern, re.Pattern):
        return _WRITTEN.get(pattern, f"re.compile({pattern.pattern!r})")
    return repr(pattern)


def written_as(pattern: re.Pattern, text: str) -> re.Pattern:
    """``pattern``, shown as ``text`` by :func:`pattern_label` (a rule set's derived
    patterns, e.g. ``excluding(...)``, read as they were written)."""
    _WRITTEN.setdefault(pattern, text)
    return pattern


def pattern_label(pattern: Pattern) -> str:
    """A rule's pattern as written: ``'kernel'``, ``any_of('{kernel,weight}')``,
    ``re.compile('...')``."""
    return _written(pattern)


def _key_name(k: Any) -> str:
    if isinstance(k, jax.tree_util.DictKey):
        return str(k.key)
    if isinstance(k, jax.tree_util.SequenceKey):
        return str(k.idx)
    if isinstance(k, jax.tree_util.GetAttrKey):
        return k.name
    if isinstance(k, jax.tree_util.FlattenedIndexKey):
        return str(k.key)
    return str(k)


def path_str(keypath: Sequence[Any], *, drop_value: bool = True) -> str:
    """``"Dense_0/kernel"`` for a jax key path. A trailing ``.value`` attribute (nnx
    ``Variable`` and linen ``Partitioned`` boxes) is dropped unless ``drop_value=False``."""
    keypath = list(keypath)
    if (
        drop_value
        and keypath
        and isinstance(keypath[-1], jax.tree_util.GetAttrKey)
        and keypath[-1].name == "value"
    ):
        keypath = keypath[:-1]
    return "/".join(_key_name(k) for k in keypath)


def path_key(key: jax.Array, path: str) -> jax.Array:
    """The leaf's own key: the base key folded with a stable hash (CRC32) of its path — not
    Python's per-process ``hash`` — so adding or removing a layer never changes the values
    of the others, in any process."""
    return jax.random.fold_in(key, zlib.crc32(path.encode()) & 0x7FFFFFFF)


@functools.lru_cache(maxsize=512)
def _glob_regex(pattern: str) -> re.Pattern:
    anchored = pattern.startswith("/")
    body = _translate(pattern.lstrip("/") if anchored else pattern, pattern)
    try:
        return re.compile(body if anchored else f"(?:.*/)?{body}")
    except re.error as e:  # e.g. a character class [z-a] with a reversed range
        raise ValueError(f"reinit: pattern {pattern!r} is not a valid glob: {e}") from None


def _translate(pat: str, whole: str) -> str:
    out, i, n = [], 0, len(pat)
    while i < n:
        c = pat[i]
        if pat.startswith("**/", i) and (i == 0 or pat[i - 1] == "/"):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("**", i) and (i == 0 or pat[i - 1] == "/") and i + 2 == n:
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = pat.find("]", i + 2)
            if j < 0:
                raise ValueError(f"reinit: pattern {whole!r} has an unclosed '['")
            inner = pat[i + 1 : j]
            inner = "^" + inner[1:] if inner.startswith("!") else inner
            out.append(f"[{inner.replace(chr(92), chr(92) * 2)}]")
            i = j + 1
        elif c == "{":
            j = pat.find("}", i)
            if j < 0:
                raise ValueError(f"reinit: pattern {whole!r} has an unclosed '{{'")
            alts = pat[i + 1 : j].split(",")
            out.append("(?:" + "|".join(_translate(a, whole) for a in alts) + ")")
            i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def matches(pattern: Pattern, path: str) -> bool:
    """Whether a rule pattern (glob or ``re.Pattern``) matches a "/"-joined path."""
    regex = pattern if isinstance(pattern, re.Pattern) else _glob_regex(pattern)
    return regex.fullmatch(path) is not None


def _alternatives(pattern: Pattern) -> list[Pattern]:
    """Every expansion of a glob's ``{a,b}`` groups (a pattern without one: itself)."""
    if not isinstance(pattern, str) or "{" not in pattern:
        return [pattern]
    i = pattern.index("{")
    j = pattern.find("}", i)
    if j < 0:
        return [pattern]
    return [
        alt
        for choice in pattern[i + 1 : j].split(",")
        for alt in _alternatives(pattern[:i] + choice + pattern[j + 1 :])
    ]


_INDEXED_SEGMENT = re.compile(r"(.+?)[_.](\d+)")


def _indexed(path: str) -> list[tuple[tuple[str, str], int]]:
    """The indexed segments of a path, outermost first: ``((parent, name), index)`` for
    ``layers_3`` / ``h.3`` (one segment) and ``layers/3`` (a number after a name)."""
    segs = path.split("/")[:-1]  # the last segment is the parameter's own name
    out = []
    for j, seg in enumerate(segs):
        if seg.isdigit():
            parent = "/".join(segs[: max(j - 1, 0)])
            out.append(((parent, segs[j - 1] if j else ""), int(seg)))
        else:
            m = _INDEXED_SEGMENT.fullmatch(seg)
            if m is not None:
                out.append((("/".join(segs[:j]), m.group(1)), int(m.group(2))))
    return out


def _path_layers(paths: Sequence[str]) -> dict[str, tuple[int, int]]:
    """``path -> (layer_index, depth)`` from the integers in the paths (see
    :class:`LeafInfo`): depth is one more than the largest index of the same name under the
    same parent; the outermost indexed segment with siblings wins."""
    found = {p: _indexed(p) for p in paths}
    depth: dict[tuple[str, str], int] = {}
    for segs in found.values():
        for group, i in segs:
            depth[group] = max(depth.get(group, 0), i + 1)
    out = {}
    for p, segs in found.items():
        if segs:
            group, i = next(((g, i) for g, i in segs if depth[g] > 1), segs[0])
            out[p] = (i, depth[group])
    return out
