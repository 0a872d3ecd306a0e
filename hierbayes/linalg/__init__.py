"""Linear algebra shared by both engines.

* :mod:`~hierbayes.linalg.crossprod`: the cross-products of ``[Z X y]`` in MixedModels.jl's
  blocked form, for the REML deviance and (sliced) the Bayesian marginal kernel;
* :mod:`~hierbayes.linalg.blocked`: the blocked Cholesky factor of the penalised least-squares
  system.
"""
