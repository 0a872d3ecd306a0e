"""R's names for sum and Helmert contrast columns, on formulaic's contrasts.

R names the columns of ``contr.sum`` and ``contr.helmert`` ``1``, ``2``, ...
(the matrices have no column names), so ``C(f, contr.sum)`` gives
``C(f, contr.sum)1``; formulaic names them after levels (``[S.a]``). The values
are formulaic's, which are R's. Kept apart from :mod:`hierbayes.spec.modelframe`
so that formulaic is imported only when a model matrix is built, and as
module-level classes so that a fitted spec can be pickled.

Examples
--------
>>> RSumContrasts().get_coding_column_names(["a", "b", "c"])
['1', '2']
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from formulaic.transforms.contrasts import HelmertContrasts, SumContrasts


class _Numbered:
    """R's column names 1, 2, ... for contrasts whose matrices have no column names."""

    FACTOR_FORMAT_REDUCED = "{name}[{field}]"

    def get_coding_column_names(self, levels: Sequence[Hashable],
                                reduced_rank: bool = True) -> Sequence[Hashable]:
        return [str(i) for i in range(1, len(levels))] if reduced_rank else levels


class RSumContrasts(_Numbered, SumContrasts):
    """``contr.sum`` with R's column names."""


class RHelmertContrasts(_Numbered, HelmertContrasts):
    """``contr.helmert`` with R's column names."""
