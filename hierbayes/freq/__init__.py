"""The frequentist engine: REML and ML as lme4's lmer, GLMMs as its glmer, and inference on their fits.

It reads a design from :mod:`hierbayes.spec` and never imports the report
layer (:mod:`hierbayes.report`). The stages, each callable alone:

* :mod:`~hierbayes.freq.deviance`: the profiled deviance as a function of theta (``mkLmerDevfun``);
* :mod:`~hierbayes.freq.optimize`: the optimisers, :class:`OptSummary` and lme4's convergence checks;
* :mod:`~hierbayes.freq.estimates`: fixed effects, sigma, conditional modes and variances;
* :mod:`~hierbayes.freq.fit`: :func:`fit_design` and :func:`refit` (``optimizeLmer``, ``mkMerMod``),
  returning the record :class:`~hierbayes.freq.mermod.MerMod`;
* inference on a record: :mod:`~hierbayes.freq.ddf` (Satterthwaite, Kenward-Roger),
  :mod:`~hierbayes.freq.confint` (:mod:`~hierbayes.freq.profile`, :mod:`~hierbayes.freq.wald`,
  :mod:`~hierbayes.freq.bootstrap`, named by :mod:`~hierbayes.freq.params`) and
  :mod:`~hierbayes.freq.sim` (arm::sim, simulated responses).

GLMMs, as glmer: :mod:`~hierbayes.freq.pirls` (PIRLS, ``pwrssUpdate``),
:mod:`~hierbayes.freq.laplace` (the Laplace and AGQ deviance, ``mkGlmerDevfun``),
:mod:`~hierbayes.freq.glmer` (the two stages and the checks, returning
:class:`~hierbayes.freq.glmermod.GlmerMod`), :mod:`~hierbayes.freq.glmernb`
(glmer.nb), and their inference (:mod:`~hierbayes.freq.glmersim`,
:mod:`~hierbayes.freq.glmerprofile`, the bootstrap and Wald intervals above).

The cross-products (a GLMM's reweighted per PIRLS iteration) and the blocked
Cholesky factor are :mod:`hierbayes.linalg`'s.
"""
