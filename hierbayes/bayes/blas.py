"""PyTensor's BLAS lookup, done once without its warning.

A pip-installed PyTensor finds no BLAS to link and warns ("could not link to a
BLAS installation ... severely degraded") the first time a graph rewrite asks.
hierbayes's sampler does not use PyTensor, and nutpie's numba backend does not
use that BLAS, so the warning only alarms.

Examples
--------
>>> from hierbayes.bayes.blas import quiet_blas_search
>>> quiet_blas_search()  # doctest: +SKIP
"""

from __future__ import annotations

import warnings


def quiet_blas_search() -> None:
    """Let PyTensor look for a BLAS once, without its warning.

    PyTensor caches the answer of the first lookup, so doing it here under a
    filter for that one message silences it without changing what PyTensor
    uses; a BLAS that is found is used as before.
    """
    import pytensor

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
        _ = pytensor.config.blas__ldflags
