"""Response families: what values each accepts, how the mean links to the predictor, and the rest.

Each family is one module of this package (``gaussian.py``, ``bernoulli.py``,
``poisson.py``) that exports its :class:`~hierbayes.families.base.Family` as
``FAMILY``; :func:`discover` finds them, so adding a family is adding a module
(``docs/extending.md``).

Examples
--------
>>> from hierbayes.families import get_family
>>> get_family("binomial").name
'bernoulli'
>>> list(FAMILIES)
['gaussian', 'bernoulli', 'poisson']
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

from hierbayes.errors import DataError
from hierbayes.families.base import Family

__all__ = ["ALIASES", "DEFAULT", "FAMILIES", "Family", "discover", "get_family"]

DEFAULT = "gaussian"


def discover(path: Iterable[str] | None = None) -> dict[str, Family]:
    """Every family module's ``FAMILY`` on the package's path, by name.

    The default family comes first, then the others by name (the order of
    the message on an unknown family). Modules without a ``FAMILY``
    (``base``) are skipped.

    Parameters
    ----------
    path
        Folders to look in; this package's ``__path__`` by default.

    Examples
    --------
    >>> sorted(discover())
    ['bernoulli', 'gaussian', 'poisson']
    """
    found: dict[str, Family] = {}
    for info in pkgutil.iter_modules(list(__path__ if path is None else path), f"{__name__}."):
        family = getattr(importlib.import_module(info.name), "FAMILY", None)
        if not isinstance(family, Family):
            continue
        if family.name in found:
            raise RuntimeError(f"Two family modules define the family '{family.name}'.")
        found[family.name] = family
    return dict(sorted(found.items(), key=lambda kv: (kv[0] != DEFAULT, kv[0])))


def aliases_of(families: dict[str, Family]) -> dict[str, str]:
    """Alias -> family name, over the given families.

    Examples
    --------
    >>> aliases_of(FAMILIES)["logistic"]
    'bernoulli'
    """
    return {a: f.name for f in families.values() for a in f.aliases}


FAMILIES: dict[str, Family] = discover()
ALIASES: dict[str, str] = aliases_of(FAMILIES)


def get_family(family: str | Family) -> Family:
    """Look a family up by name (``"gaussian"``, ``"bernoulli"``/``"binomial"``, ``"poisson"``).

    Examples
    --------
    >>> str(get_family("Normal"))
    'gaussian (identity link)'
    """
    if isinstance(family, Family):
        return family
    if not isinstance(family, str):
        raise DataError(f"family must be a name such as 'gaussian', not {family!r}.")
    key = ALIASES.get(family.lower(), family.lower())
    if key not in FAMILIES:
        notes = [f.alias_note for f in FAMILIES.values() if f.alias_note]
        raise DataError(
            f"Unknown family '{family}'. Choose one of: {', '.join(FAMILIES)}"
            + (f" ({'; '.join(notes)})" if notes else "") + "."
        )
    return FAMILIES[key]
