"""The response family: one object that every part of hierbayes asks about the response.

A family (as in glmmTMB's and brms's ``family`` objects) says what values the
response may take and how they are encoded, how its mean links to the linear
predictor (in NumPy and in PyTensor), whether it has a dispersion parameter
(the Gaussian's residual SD ``sigma``) and that parameter's default prior, its
pointwise log-likelihood (for LOO), draws of new responses (for predictions and
posterior predictive checks), the observed variable of the PyMC model, the name
of its log-likelihood in the compiled kernels, and what the engines can do
with it (REML, the marginal kernel).

Each family is a subclass of :class:`Family` in its own module of
:mod:`hierbayes.families`, which exports its instance with the default link as
``FAMILY``; the registry (:func:`hierbayes.families.get_family`) finds those
modules itself and gives the other links' instances (``get_family("binomial",
link="probit")``). The links are :mod:`hierbayes.families.links`'.

Besides what the Bayesian engine needs, a family has R's ``glm`` family
functions (``variance``, ``dev.resids``, ``aic``, ``mustart``), which the
frequentist GLMM engine (PIRLS and the Laplace approximation) uses exactly as
lme4's ``glmer`` uses R's.

Examples
--------
>>> import numpy as np
>>> from hierbayes.families import get_family
>>> fam = get_family("poisson")
>>> str(fam), fam.kernel, fam.dispersion
('poisson (log link)', 'poisson', None)
>>> str(get_family("binomial", link="probit"))
'binomial (probit link)'
>>> fam.inverse_link(np.array([0.0, np.log(3.0)])).round(12)
array([1., 3.])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from hierbayes.errors import DataError
from hierbayes.families.links import Link, get_link


def sample_sd(values: np.ndarray) -> float:
    """The sample SD (``ddof=1``), or 0 for a constant or a single value.

    The default priors scale with it (:mod:`hierbayes.bayes.priors`); below
    1e-12 the values count as constant.

    Examples
    --------
    >>> sample_sd(np.array([1.0, 3.0])), sample_sd(np.array([2.0, 2.0])), sample_sd(np.array([5.0]))
    (1.4142135623730951, 0.0, 0.0)
    """
    s = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return s if s > 1e-12 else 0.0


def numeric_response(values: pd.Series, label: str, family: str) -> np.ndarray:
    """A numeric or boolean response as floats; anything else is refused for ``family``.

    Examples
    --------
    >>> numeric_response(pd.Series([1, 2]), "y", "gaussian")
    array([1., 2.])
    """
    if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
        raise DataError(
            f"The response '{label}' is not numeric (dtype {values.dtype}); the {family} "
            "family needs numbers. Convert the column (e.g. with pd.to_numeric) or choose "
            "family='bernoulli' for a two-level outcome."
        )
    return values.to_numpy(dtype=float)


class Family(ABC):
    """A response distribution with its link, and everything the engines need of it.

    Subclasses set the class attributes and implement the methods. A family
    is an instance per link: the module's ``FAMILY`` has the default link,
    :meth:`with_link` (or ``get_family(name, link=...)``) the others.

    Parameters
    ----------
    link
        The link's name (one of ``links``); ``default_link`` when None.

    Attributes
    ----------
    name
        The family's name: ``"gaussian"``, ``"binomial"``, ``"poisson"``, ...
    aliases
        Other names :func:`~hierbayes.families.get_family` accepts (``"normal"``).
    alias_note
        A word on a name that might mislead, for the message on an unknown family.
    links
        The links the family supports, by R's name.
    default_link
        The link when none is given (R's default); None where R's default is
        one hierbayes lacks, so that the user must say which.
    link
        The family's :class:`~hierbayes.families.links.Link`.
    kernel
        The name of the family's log-likelihood in the compiled kernels
        (:data:`hierbayes.bayes.codes.FAMILY_CODES` maps it to the C code).
    dispersion
        The name of the family's own parameter (``"sigma"``, the residual SD;
        ``"shape"``), or None when the variance is a function of the mean.
    residual_sd
        Whether the dispersion is a residual SD (the Gaussian's ``sigma``,
        the ``Residual`` row of varcorr), rather than a shape.
    dispersion_label
        The ``grp`` of the residual SD's row in ``varcorr`` (lme4's ``"Residual"``), or None.
    model_kind
        How a summary names the model: ``"linear"`` or ``"generalized linear"``.
    supports_reml
        Whether the REML/ML engine (:mod:`hierbayes.freq`) fits it.
    supports_marginal
        Whether the group effects integrate out in closed form: the marginal
        kernel, and the collapsed random-intercept block of the full kernel.
    takes_trials
        Whether the response has binomial trials (``cbind(s, f)``, or a
        proportion with ``weights=``).
    takes_weights
        Whether prior weights are allowed (``weights=``; for a binomial family
        they are the trials).
    """

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    alias_note: ClassVar[str | None] = None
    links: ClassVar[tuple[str, ...]]
    default_link: ClassVar[str | None]
    kernel: ClassVar[str]
    dispersion: ClassVar[str | None] = None
    residual_sd: ClassVar[bool] = False
    dispersion_label: ClassVar[str | None] = None
    model_kind: ClassVar[str] = "generalized linear"
    supports_reml: ClassVar[bool] = False
    supports_marginal: ClassVar[bool] = False
    takes_trials: ClassVar[bool] = False
    takes_weights: ClassVar[bool] = False

    def __init__(self, link: str | Link | None = None) -> None:
        if link is None:
            link = self.default_link
        if link is None:
            raise DataError(self.link_required_message())
        name = link.name if isinstance(link, Link) else link
        if name not in self.links:
            raise DataError(
                f"The {self.name} family does not support the {name!r} link here; it has: "
                f"{', '.join(self.links)}.")
        self.link: Link = get_link(name)

    def link_required_message(self) -> str:
        """The message when no link is given and there is no default (see ``default_link``)."""
        return (f"The {self.name} family needs a link: give one of {', '.join(self.links)}, "
                f"as in get_family({self.name!r}, link={self.links[0]!r}).")

    def with_link(self, link: str | Link | None) -> Family:
        """The same family with another link (the default when None).

        Examples
        --------
        >>> from hierbayes.families import get_family
        >>> get_family("binomial").with_link("cloglog").link.name
        'cloglog'
        """
        if link is None and self.default_link is None:
            return self
        name = self.default_link if link is None else (link.name if isinstance(link, Link) else link)
        if name == self.link.name:
            return self
        return type(self)(name)

    @property
    def has_sigma(self) -> bool:
        """Whether there is a residual SD (the ``Residual`` row of varcorr)."""
        return self.dispersion is not None and self.residual_sd

    @property
    def canonical(self) -> bool:
        """Whether the link is the family's canonical one (PIRLS's Fisher and Newton steps agree)."""
        return False

    def __str__(self) -> str:
        return f"{self.name} ({self.link.name} link)"

    def __repr__(self) -> str:
        return f"<family {self}>"

    def __eq__(self, other: object) -> bool:
        # by name and link: an unpickled family equals the registry's instance
        return (isinstance(other, Family) and other.name == self.name
                and other.link.name == self.link.name)

    def __hash__(self) -> int:
        return hash(("Family", self.name, self.link.name))

    def __reduce__(self) -> tuple:
        # by name and link, so unpickling gives the registry's instance
        from hierbayes.families import get_family

        return get_family, (self.name, self.link.name)

    # ---------------------------------------------------------------- the response

    @abstractmethod
    def encode_response(self, values: pd.Series, label: str) -> np.ndarray:
        """Check the response against the family's support and return it as floats.

        Raises :class:`~hierbayes.errors.DataError` naming the column
        (``label``) and the first offending value.
        """

    # ---------------------------------------------------------------- the link

    def inverse_link(self, eta: np.ndarray) -> np.ndarray:
        """The mean from the linear predictor, in NumPy (the link's inverse)."""
        return self.link.linkinv(eta)

    def inverse_link_tensor(self, eta: Any) -> Any:
        """The mean from the linear predictor, in PyTensor (for the PyMC graph)."""
        return self.link.linkinv_tensor(eta)

    # ---------------------------------------------------------------- default priors

    def prior_scale(self, y: np.ndarray) -> float:
        """The scale ``s`` the default priors use (``docs/priors.md``): 1 on the link scale."""
        return 1.0

    @abstractmethod
    def intercept_location(self, y: np.ndarray, trials: np.ndarray | None = None) -> float:
        """The mean of the default prior on the intercept, on the link scale."""

    def dispersion_prior(self, scale: float) -> tuple[str, tuple[float, ...]] | None:
        """The default prior on the dispersion, as ``(distribution, parameters)``, or None.

        ``scale`` is :meth:`prior_scale`'s (1 where that is 0). The Bayesian
        engine makes it a :class:`~hierbayes.bayes.priors.Prior`.
        """
        return None

    # ---------------------------------------------------------------- the likelihood

    @abstractmethod
    def loglik(self, y: np.ndarray, eta: np.ndarray, dispersion: np.ndarray | None = None,
               trials: np.ndarray | None = None,
               weights: np.ndarray | None = None) -> np.ndarray:
        """Pointwise log-likelihood, with every normalising constant.

        Parameters
        ----------
        y
            The encoded response, ``(n,)`` (binomial: the successes).
        eta
            The linear predictor, offsets included, ``(..., n)`` (e.g. chains, draws, rows).
        dispersion
            The dispersion per draw, ``eta.shape[:-1]``; None without one.
        trials
            Binomial trials per row, ``(n,)``; None: one each.
        weights
            Prior weights per row, ``(n,)``; None: one each.

        Returns
        -------
        numpy.ndarray
            ``eta``'s shape.
        """

    @abstractmethod
    def draw(self, rng: np.random.Generator, mean: np.ndarray,
             dispersion: np.ndarray | None = None, trials: np.ndarray | None = None,
             weights: np.ndarray | None = None) -> np.ndarray:
        """Draws of the response given its mean ``(S, n)`` (and the dispersion, ``(S,)``).

        For a binomial family ``mean`` is the probability and the draws are
        successes out of ``trials``.
        """

    @abstractmethod
    def observe(self, name: str, eta: Any, observed: np.ndarray, dims: str,
                dispersion: Any = None, trials: np.ndarray | None = None,
                weights: np.ndarray | None = None) -> Any:
        """The observed variable of the PyMC model (inside its ``with`` block).

        ``dispersion`` is the dispersion's random variable, made by the caller
        from its prior (before this call, so the graph's order is the same).
        ``eta`` includes the offsets.
        """

    def latent_variance(self, dispersion: np.ndarray | None) -> np.ndarray | float | None:
        """The residual variance on the latent scale, for an ICC; None where it depends on the mean."""
        return None

    discrete: ClassVar[bool] = True

    @abstractmethod
    def cdf(self, y: np.ndarray, mean: np.ndarray, dispersion: np.ndarray | float | None = None,
            trials: np.ndarray | None = None) -> np.ndarray:
        """``P(Y <= y)`` at the given mean (a binomial family's: the probability), per row.

        With ``discrete`` families, ``cdf(y - 1)`` is ``P(Y < y)``; randomized quantile
        residuals (Dunn and Smyth 1996) draw between the two.
        """

    # ---------------------------------------------------------------- R's glm family functions

    def glm_response(self, y: np.ndarray, trials: np.ndarray | None,
                     weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``(y, prior weights)`` as R's glm sees them: for a binomial family the
        proportion and the trials; otherwise ``y`` and the weights (ones by default).

        Examples
        --------
        >>> from hierbayes.families import get_family
        >>> get_family("binomial").glm_response(np.array([1.0, 3.0]), np.array([2.0, 4.0]), None)
        (array([0.5 , 0.75]), array([2., 4.]))
        """
        w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
        return np.asarray(y, dtype=float), w

    @abstractmethod
    def variance(self, mu: np.ndarray, dispersion: float | None = None) -> np.ndarray:
        """R's ``family$variance``: the variance of y as a function of the mean (up to dispersion)."""

    @abstractmethod
    def deviance_residuals(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray,
                           dispersion: float | None = None) -> np.ndarray:
        """R's ``family$dev.resids``: each row's contribution to the deviance."""

    @abstractmethod
    def aic(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray, deviance: float,
            dispersion: float | None = None) -> float:
        """R's ``family$aic``: -2 log-likelihood (plus R's per-family extra term), at glm's ``y`` and ``wt``."""

    @abstractmethod
    def mu_start(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """R's ``family$initialize``: the starting mean for IRLS."""
