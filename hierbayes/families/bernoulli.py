"""The Bernoulli family: a 0/1 response (brms's ``bernoulli``), the binomial with one trial per row.

Examples
--------
>>> import numpy as np
>>> FAMILY.inverse_link(np.array([0.0]))
array([0.5])
"""

from __future__ import annotations

from hierbayes.families.binomial import Binomial


class Bernoulli(Binomial):
    """``y ~ bernoulli(g^-1(eta))``: no trials, no weights; links as the binomial's."""

    name = "bernoulli"
    aliases = ("logistic",)
    takes_trials = False
    takes_weights = False

    @property
    def kernel(self) -> str:  # type: ignore[override]
        """``"bernoulli"`` for the logit link (its own fast kernel), else ``"binomial"``."""
        return "bernoulli" if self.link.name == "logit" else "binomial"


FAMILY = Bernoulli()
