"""What fits report: summaries, accessors (fixef, ranef, coef, varcorr) and comparisons.

``bayes`` holds the posterior's report (:class:`BayesFit`), ``lmer`` the REML
and ML fit's (:class:`LmerFit`).
"""

from hierbayes.report.bayes import BayesFit, Diagnostics, Summary
from hierbayes.report.lmer import LmerFit
from hierbayes.report.sims import Sims

__all__ = ["BayesFit", "Diagnostics", "LmerFit", "Sims", "Summary"]
