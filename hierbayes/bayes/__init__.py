"""The Bayesian engine: priors, the PyMC model, the compiled log density and NUTS.

It reads a design from :mod:`hierbayes.spec` and never imports the report
layer (:mod:`hierbayes.report`).
"""
