"""Exceptions and warnings raised by hierbayes.

Every error a user can cause derives from :class:`HierbayesError`, so one
``except hb.HierbayesError`` catches them all; each also derives from the
built-in class that fits (``ValueError``, ``KeyError``) so generic handlers
keep working.

Examples
--------
>>> import hierbayes as hb
>>> try:
...     hb.parse_formula("y ~ x + (1 | )")
... except hb.HierbayesError as err:
...     print(type(err).__name__)
FormulaError
"""

from __future__ import annotations


class HierbayesError(Exception):
    """Base class of every error hierbayes raises on bad input."""


class FormulaError(HierbayesError, ValueError):
    """The formula cannot be read, or names something the data lacks."""


class DataError(HierbayesError, ValueError):
    """The data cannot be fitted as given (types, missing values, levels)."""


class PriorError(HierbayesError, ValueError):
    """A prior is not a distribution, has bad arguments, or names no parameter."""


class SettingsError(HierbayesError, ValueError):
    """An argument of the wrong type or value (a count, a seed, a probability, a flag)."""


class SamplerError(SettingsError):
    """An unknown or unavailable sampler, or bad sampler settings (draws, seed, cores, ...)."""


class FitFileError(HierbayesError, ValueError):
    """A file that is not a saved hierbayes fit, comes from a newer format, or no longer matches."""


class HierbayesWarning(UserWarning):
    """Something was changed or dropped on the user's behalf (rows, columns)."""


class ConvergenceWarning(HierbayesWarning):
    """Diagnostics call for caution: the sampler's (divergences, R-hat, ESS) or lme4's REML checks."""


def check_count(name: str, value: object, minimum: int = 1, error: type = SettingsError) -> None:
    """Raise ``error`` (a :class:`SettingsError`) unless ``value`` is an integer, not a bool, of at
    least ``minimum``.

    Examples
    --------
    >>> check_count("n", 3)
    >>> check_count("n_sims", 1, minimum=2)
    Traceback (most recent call last):
    ...
    hierbayes.errors.SettingsError: n_sims must be an integer of at least 2, not 1
    """
    import numpy as np

    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) or value < minimum:
        need = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        raise error(f"{name} must be {need}, not {value!r}")


def caret(text: str, start: int, end: int | None = None) -> str:
    """Return ``text`` with a line of carets under ``text[start:end]``.

    Used to show where in a formula a problem lies.

    Examples
    --------
    >>> print(caret("y ~ (x | )", 4, 10))
      y ~ (x | )
          ^^^^^^
    """
    end = start + 1 if end is None else max(end, start + 1)
    return f"  {text}\n  {' ' * start}{'^' * (end - start)}"
