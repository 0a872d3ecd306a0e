"""The plot methods Bayesian, REML and glmer fits share; each returns a matplotlib Figure.

The drawing is in :mod:`hierbayes.report.plots`, which tells the two kinds of fit apart
(credible intervals against conditional SDs); it is imported on first use, so
fitting never pays for matplotlib.
"""

from __future__ import annotations

from typing import Any


class GroupPlots:
    """``plot_caterpillar``, ``plot_groups``, ``plot_shrinkage`` and ``plot_diagnostics``."""

    def plot_caterpillar(self, group: str | None = None, prob: float = 0.95, **kwargs: Any):
        """Each level's group effect with its interval, sorted; one panel per term.

        Credible intervals for a Bayesian fit, conditional-SD intervals (lme4's
        ``condVar``) for a REML fit. See :func:`hierbayes.report.plots.plot_caterpillar`.
        """
        from hierbayes.report.plots import plot_caterpillar

        return plot_caterpillar(self, group, prob, **kwargs)

    def plot_groups(self, x: str, groups: list | None = None, group: str | None = None,
                    pooling: tuple[str, ...] | None = None, max_groups: int = 20, **kwargs: Any):
        """The data faceted by group with partial-, no- and complete-pooling lines (a GLMM's:
        partial pooling, on the mean's scale)."""
        from hierbayes.report.plots import plot_groups

        return plot_groups(self, x, groups, group, pooling, max_groups, **kwargs)

    def plot_shrinkage(self, group: str | None = None):
        """No-pooling estimates moving to the mixed model's, group by group."""
        from hierbayes.report.plots import plot_shrinkage

        return plot_shrinkage(self, group)

    def plot_diagnostics(self):
        """Residuals against fitted values, and normal QQ plots of residuals and group effects."""
        from hierbayes.report.plots import plot_diagnostics

        return plot_diagnostics(self)
