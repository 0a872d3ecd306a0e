"""Response families: what values each accepts, how the mean links to the predictor, and the rest.

Each family is one module of this package (``gaussian.py``, ``binomial.py``,
``poisson.py``, ...) that exports its :class:`~hierbayes.families.base.Family`
with its default link as ``FAMILY``; :func:`discover` finds them, so adding a
family is adding a module (``docs/extending.md``). :func:`get_family` gives a
family with any of its links.

Examples
--------
>>> from hierbayes.families import get_family
>>> str(get_family("binomial", link="probit"))
'binomial (probit link)'
>>> list(FAMILIES)
['gaussian', 'bernoulli', 'binomial', 'gamma', 'negbinomial', 'poisson']
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
    ['bernoulli', 'binomial', 'gamma', 'gaussian', 'negbinomial', 'poisson']
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


_WITH_LINK: dict[tuple[str, str], Family] = {}


def get_family(family: str | Family, link: str | None = None) -> Family:
    """Look a family up by name (``"gaussian"``, ``"binomial"``, ``"poisson"``, ...), with a link.

    Parameters
    ----------
    family
        A name (any case; aliases such as ``"normal"``), or a family, returned as
        it is (with ``link``, the same family with that link).
    link
        R's name of the link (``"probit"``); the family's default when None.
        A family whose R default hierbayes lacks (gamma's inverse link) needs one.

    Examples
    --------
    >>> str(get_family("Normal"))
    'gaussian (identity link)'
    >>> get_family("binomial", link="cloglog") is get_family("binomial", link="cloglog")
    True
    """
    if isinstance(family, Family):
        if link is None or link == family.link.name:
            return family
        family = family.name
    if not isinstance(family, str):
        raise DataError(f"family must be a name such as 'gaussian', not {family!r}.")
    key = ALIASES.get(family.lower(), family.lower())
    if key not in FAMILIES:
        notes = [f.alias_note for f in FAMILIES.values() if f.alias_note]
        raise DataError(
            f"Unknown family '{family}'. Choose one of: {', '.join(FAMILIES)}"
            + (f" ({'; '.join(notes)})" if notes else "") + "."
        )
    base = FAMILIES[key]
    if link is None:
        if base.default_link is None:
            raise DataError(base.link_required_message())
        return base
    if link == base.link.name:
        return base
    if (key, link) not in _WITH_LINK:
        _WITH_LINK[(key, link)] = base.with_link(link)
    return _WITH_LINK[(key, link)]
