"""The frequentist engine: REML and ML as lme4's lmer, and inference on its fits.

It reads a design from :mod:`hierbayes.spec` and never imports the report
layer (:mod:`hierbayes.report`).
"""
