"""A Bayesian fit's sampler diagnostics, as Stan reports them, and the warnings they raise.

Over the headline parameters (fixed effects, SDs, correlations, sigma):
divergences, draws whose tree reached ``max_treedepth``, E-BFMI per chain,
rank-normalised split R-hat and bulk and tail ESS
(:mod:`hierbayes.bayes.diagnostics`). :func:`convergence_messages` turns them
into the warnings ``fit()`` raises, each saying what to do.

Examples
--------
>>> d = fit.diagnostics()
>>> d.divergences, d.treedepth_hits
(0, 0)
>>> print(d)  # doctest: +ELLIPSIS
Sampler diagnostics (2 chains x 500 draws after 500 warm-up, max_treedepth 10):
  divergences: 0 of 1000 draws
  tree depth at max_treedepth: 0 of 1000 draws
...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hierbayes.report.format import fixed

if TYPE_CHECKING:
    from hierbayes.bayes.posterior import Posterior, SamplingInfo

#: Stan's threshold for a low energy fraction of missing information.
EBFMI_LOW = 0.3


@dataclass(repr=False)
class Diagnostics:
    """Sampler diagnostics over the headline parameters (fixef, SDs, correlations, sigma)."""

    divergences: int
    draws: int
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    table: pd.DataFrame  # per parameter: rhat, ess_bulk, ess_tail
    treedepth_hits: int = 0  # draws whose trajectory stopped at max_treedepth
    max_treedepth: int = 10
    ebfmi: tuple[float, ...] = ()  # per chain; empty when the sampler kept no energy
    chains: int = 0
    tune: int = 0

    def low_ebfmi(self) -> list[int]:
        """The chains whose E-BFMI is below 0.3."""
        return [c for c, v in enumerate(self.ebfmi) if v < EBFMI_LOW]

    def __repr__(self) -> str:
        per_chain = self.draws // self.chains if self.chains else self.draws
        lines = [f"Sampler diagnostics ({self.chains} chains x {per_chain} draws after {self.tune} "
                 f"warm-up, max_treedepth {self.max_treedepth}):",
                 f"  divergences: {self.divergences} of {self.draws} draws",
                 f"  tree depth at max_treedepth: {self.treedepth_hits} of {self.draws} draws"]
        if self.ebfmi:
            low = self.low_ebfmi()
            note = f"chains {', '.join(map(str, low))} below {EBFMI_LOW}" if low else f"all above {EBFMI_LOW}"
            lines.append(f"  E-BFMI by chain: {', '.join(fixed(v, 2) for v in self.ebfmi)} ({note})")
        else:
            lines.append("  E-BFMI: not available (the sampler kept no energy)")
        t = self.table
        if len(t) and t["rhat"].notna().any():
            lines.append(f"  max R-hat: {fixed(self.max_rhat, 3)} ({t['rhat'].idxmax()})")
        if len(t) and t["ess_bulk"].notna().any():
            lines.append(f"  min ESS-bulk: {fixed(self.min_ess_bulk, 0)} ({t['ess_bulk'].idxmin()}); "
                         f"min ESS-tail: {fixed(self.min_ess_tail, 0)} ({t['ess_tail'].idxmin()})")
        return "\n".join(lines)


def _treedepth_hits(stats: dict[str, np.ndarray], max_treedepth: int) -> int:
    """Draws whose trajectory stopped at the depth limit, from whichever statistic the sampler kept."""
    for key in ("reached_max_treedepth", "maxdepth_reached"):  # PyMC's, nutpie's
        if key in stats:
            return int(np.sum(np.asarray(stats[key], dtype=bool)))
    for key in ("tree_depth", "depth"):  # ours and numpyro's; nutpie's
        if key in stats:
            return int(np.sum(np.asarray(stats[key]) >= max_treedepth))
    return 0


def compute_diagnostics(headline: dict[str, np.ndarray], posterior: Posterior,
                        info: SamplingInfo) -> Diagnostics:
    """The diagnostics of a fit's headline draws (each (chain, draw)) and its sampler statistics."""
    from hierbayes.bayes.diagnostics import ebfmi, ess_bulk, ess_tail, rhat

    rows = {name: {"rhat": rhat(d), "ess_bulk": ess_bulk(d), "ess_tail": ess_tail(d)}
            for name, d in headline.items()}
    table = pd.DataFrame(rows, index=["rhat", "ess_bulk", "ess_tail"]).T if rows else \
        pd.DataFrame(columns=["rhat", "ess_bulk", "ess_tail"], dtype=float)
    stats = posterior.stats
    energy = stats.get("energy")
    fractions: tuple[float, ...] = ()
    if energy is not None and np.asarray(energy).shape[-1] > 1:
        fractions = tuple(float(v) for v in ebfmi(energy))
    max_depth = getattr(info, "max_treedepth", 10)
    return Diagnostics(
        divergences=int(np.sum(stats["diverging"])) if "diverging" in stats else 0,
        draws=posterior.n_chains * posterior.n_draws,
        max_rhat=float(np.nanmax(table["rhat"])) if table["rhat"].notna().any() else np.nan,
        min_ess_bulk=float(table["ess_bulk"].min()),
        min_ess_tail=float(table["ess_tail"].min()),
        table=table,
        treedepth_hits=_treedepth_hits(stats, max_depth),
        max_treedepth=max_depth,
        ebfmi=fractions,
        chains=posterior.n_chains,
        tune=info.tune,
    )


def convergence_messages(d: Diagnostics, chains: int, draws: int, rhat: float = 1.01,
                         ess: float = 400) -> list[str]:
    """The warnings a fit's diagnostics call for, each with advice; empty when all is well."""
    messages = []
    if d.divergences:
        messages.append(
            f"{d.divergences} of {d.draws} post-warmup draws ended in a divergence, so the "
            "posterior may be biased. Refit with a higher target_accept (e.g. "
            "fit(target_accept=0.95)), give tighter priors to the SDs, or simplify the "
            "random-effect structure."
        )
    if d.treedepth_hits:
        messages.append(
            f"{d.treedepth_hits} of {d.draws} post-warmup draws stopped at the maximum tree depth "
            f"({d.max_treedepth}) rather than at a U-turn: not a bias, but slow exploration and fewer "
            f"effective draws. Refit with fit(max_treedepth={d.max_treedepth + 2}); if the trees stay "
            "that long, reparameterise (fit(centred=...) per block) or give the SDs tighter priors."
        )
    low = d.low_ebfmi()
    if low:
        values = ", ".join(fixed(d.ebfmi[c], 2) for c in low)
        messages.append(
            f"E-BFMI below {EBFMI_LOW} in chain{'s' if len(low) > 1 else ''} "
            f"{', '.join(map(str, low))} ({values}): the energy changes too little from draw to "
            "draw, so the chains may not reach the posterior's tails. Reparameterise "
            "(fit(centred=...) per block, or a simpler random-effect structure) or give the SDs "
            "tighter priors; a longer warm-up (tune) can help."
        )
    high = d.table.index[d.table["rhat"] > rhat].tolist()
    if high:
        messages.append(
            f"R-hat above {rhat} for {', '.join(high)}: the chains disagree. Draw more "
            "(larger tune and draws), or reparameterise (fit(centred=...) per block, or a "
            "simpler random-effect structure), before trusting the estimates."
        )
    low_ess = d.table.index[d.table["ess_bulk"] < ess].tolist()
    if low_ess:
        messages.append(
            f"Bulk ESS below {ess:g} for {', '.join(low_ess)}: too few effective draws for "
            "reliable estimates and intervals. Increase draws (and tune)."
        )
    return messages + _undefined(d.table, chains, draws)


def _undefined(table: pd.DataFrame, chains: int, draws: int) -> list[str]:
    """Messages for parameters whose R-hat or ESS is not finite, by cause."""
    finite = np.isfinite(table[["rhat", "ess_bulk", "ess_tail"]].to_numpy(dtype=float))
    names = table.index[~finite.all(axis=1)].tolist()
    if not names:
        return []
    which = ", ".join(names)
    if draws < 4:
        return [f"R-hat and ESS are NA for {which}: they split each chain in two halves and "
                f"need at least 4 draws per chain, and {draws} were drawn. Draw more: reliable "
                "values need some hundreds per chain (e.g. fit(draws=1000, tune=1000))."]
    out = []
    rhat_only = table.index[~finite[:, 0] & finite[:, 1:].all(axis=1)].tolist()
    if chains < 2 and rhat_only:
        out.append(f"R-hat is NA for {', '.join(rhat_only)}: it compares chains, and only one "
                   "was run. Run at least 2 (e.g. fit(chains=4)), and draw more if needed.")
    rest = [n for n in names if not (chains < 2 and n in rhat_only)]
    if rest:
        out.append(f"R-hat or ESS is not finite for {', '.join(rest)}: their draws are not "
                   "finite or never change, so the sampler is stuck there. Check the priors "
                   "and the data for those parameters, and draw more (larger tune and draws) "
                   "before trusting any estimate.")
    return out
