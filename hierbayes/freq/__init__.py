"""The frequentist engine: REML and ML as lme4's lmer, and inference on its fits.

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

The cross-products and the blocked Cholesky factor are :mod:`hierbayes.linalg`'s.
"""
