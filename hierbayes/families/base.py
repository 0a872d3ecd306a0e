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
:mod:`hierbayes.families`, which exports one instance as ``FAMILY``; the
registry (:func:`hierbayes.families.get_family`) finds those modules itself.

Examples
--------
>>> import numpy as np
>>> from hierbayes.families import get_family
>>> fam = get_family("poisson")
>>> str(fam), fam.kernel, fam.dispersion
('poisson (log link)', 'poisson', None)
>>> fam.inverse_link(np.array([0.0, np.log(3.0)])).round(12)
array([1., 3.])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from hierbayes.errors import DataError


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

    Subclasses set the class attributes and implement the methods; one
    instance per family is enough (the registry hands out that one).

    Attributes
    ----------
    name
        The family's name: ``"gaussian"``, ``"bernoulli"``, ``"poisson"``.
    aliases
        Other names :func:`~hierbayes.families.get_family` accepts
        (``"normal"``; ``"binomial"``, ``"logistic"``).
    alias_note
        A word on an alias that might mislead, for the message on an unknown
        family (``"'binomial' means bernoulli with a 0/1 response"``).
    link
        The link's name: ``"identity"``, ``"logit"``, ``"log"``.
    kernel
        The name of the family's log-likelihood in the compiled kernels
        (:data:`hierbayes.bayes.codes.FAMILY_CODES` maps it to the C code).
    dispersion
        The name of the dispersion parameter (``"sigma"``, the residual SD),
        or None when the variance is a function of the mean.
    dispersion_label
        The ``grp`` of the dispersion's row in ``varcorr`` (lme4's
        ``"Residual"``), or None.
    model_kind
        How a summary names the model: ``"linear"`` or ``"generalized linear"``.
    supports_reml
        Whether the REML/ML engine (:mod:`hierbayes.freq`) fits it.
    supports_marginal
        Whether the group effects integrate out in closed form: the marginal
        kernel, and the collapsed random-intercept block of the full kernel.
    """

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    alias_note: ClassVar[str | None] = None
    link: ClassVar[str]
    kernel: ClassVar[str]
    dispersion: ClassVar[str | None] = None
    dispersion_label: ClassVar[str | None] = None
    model_kind: ClassVar[str] = "generalized linear"
    supports_reml: ClassVar[bool] = False
    supports_marginal: ClassVar[bool] = False

    @property
    def has_sigma(self) -> bool:
        """Whether there is a residual SD (the ``Residual`` row of varcorr)."""
        return self.dispersion is not None

    def __str__(self) -> str:
        return f"{self.name} ({self.link} link)"

    def __repr__(self) -> str:
        return f"<family {self}>"

    def __eq__(self, other: object) -> bool:
        # by name: an unpickled family equals the registry's instance
        return isinstance(other, Family) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("Family", self.name))

    def __reduce__(self) -> str:
        # pickled by reference to its module's FAMILY, so unpickling gives the registry's instance
        return "FAMILY"

    # ---------------------------------------------------------------- the response

    @abstractmethod
    def encode_response(self, values: pd.Series, label: str) -> np.ndarray:
        """Check the response against the family's support and return it as floats.

        Raises :class:`~hierbayes.errors.DataError` naming the column
        (``label``) and the first offending value.
        """

    # ---------------------------------------------------------------- the link

    @abstractmethod
    def inverse_link(self, eta: np.ndarray) -> np.ndarray:
        """The mean from the linear predictor, in NumPy."""

    @abstractmethod
    def inverse_link_tensor(self, eta: Any) -> Any:
        """The mean from the linear predictor, in PyTensor (for the PyMC graph)."""

    # ---------------------------------------------------------------- default priors

    def prior_scale(self, y: np.ndarray) -> float:
        """The scale ``s`` the default priors use (``docs/priors.md``): 1 on the link scale."""
        return 1.0

    @abstractmethod
    def intercept_location(self, y: np.ndarray) -> float:
        """The mean of the default prior on the intercept, on the link scale."""

    def dispersion_prior(self, scale: float) -> tuple[str, tuple[float, ...]] | None:
        """The default prior on the dispersion, as ``(distribution, parameters)``, or None.

        ``scale`` is :meth:`prior_scale`'s (1 where that is 0). The Bayesian
        engine makes it a :class:`~hierbayes.bayes.priors.Prior`.
        """
        return None

    # ---------------------------------------------------------------- the likelihood

    @abstractmethod
    def loglik(self, y: np.ndarray, eta: np.ndarray,
               sigma: np.ndarray | None = None) -> np.ndarray:
        """Pointwise log-likelihood.

        Parameters
        ----------
        y
            The encoded response, ``(n,)``.
        eta
            The linear predictor, ``(..., n)`` (e.g. chains, draws, rows).
        sigma
            The dispersion per draw, ``eta.shape[:-1]``; None without one.

        Returns
        -------
        numpy.ndarray
            ``eta``'s shape.
        """

    @abstractmethod
    def draw(self, rng: np.random.Generator, mean: np.ndarray,
             sigma: np.ndarray | None = None) -> np.ndarray:
        """Draws of the response given its mean ``(S, n)`` (and the dispersion, ``(S,)``)."""

    @abstractmethod
    def observe(self, name: str, eta: Any, observed: np.ndarray, dims: str,
                sigma: Any = None) -> Any:
        """The observed variable of the PyMC model (inside its ``with`` block).

        ``sigma`` is the dispersion's random variable, made by the caller from
        its prior (before this call, so the graph's order is the same).
        """

    def latent_variance(self, sigma: np.ndarray | None) -> np.ndarray | float | None:
        """The residual variance on the latent scale, for an ICC; None where it depends on the mean."""
        return None
