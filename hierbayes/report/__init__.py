"""What fits report: summaries, accessors (fixef, ranef, coef, varcorr) and comparisons.

``bayes`` holds the posterior's report (:class:`BayesFit`; its checks against
the data in ``checks``), ``lmer`` the REML and ML fit's (:class:`LmerFit`),
``glmer`` the GLMM fit's (:class:`GlmerFit`), ``merfit`` what those two share.
``diagnostics`` holds the sampler's diagnostics and the warnings they raise.
Both use ``format`` (text), ``predict`` (rows to predict and draws of them)
and ``plots``; ``compare`` sets fits side by side and ``save`` writes a
Bayesian fit to a file. The report layer imports both engines; neither imports it.
"""

from hierbayes.report.bayes import BayesFit, Summary
from hierbayes.report.diagnostics import Diagnostics
from hierbayes.report.glmer import GlmerFit
from hierbayes.report.lmer import LmerFit
from hierbayes.report.sims import Sims

__all__ = ["BayesFit", "Diagnostics", "GlmerFit", "LmerFit", "Sims", "Summary"]
