"""Plots (issue 9): each returns a Figure with titled, labelled axes and the expected artists."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure

import hierbayes as hb

PUPILS = "achievement ~ sex + ses + (1 | primary_school_id) + (1 | secondary_school_id)"


@pytest.fixture(scope="module")
def sleep_reml(sleepstudy):
    return hb.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)


@pytest.fixture(scope="module")
def pupils():
    return hb.datasets.load("pupils")


@pytest.fixture(scope="module")
def pupils_fit(pupils):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        return hb.Model(PUPILS, pupils).fit(draws=300, tune=300, chains=2, seed=1, progressbar=False)


@pytest.fixture(scope="module")
def pupils_reml(pupils):
    return hb.lmer(PUPILS, pupils)


def rendered(fig: Figure) -> Figure:
    """Render to PNG (catches drawing errors) and check every panel is titled and labelled."""
    assert isinstance(fig, Figure)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    assert buf.getvalue()[:4] == b"\x89PNG"
    for ax in fig.axes:
        assert ax.get_title() or ax.get_title(loc="left"), "untitled panel"
        assert ax.get_xlabel(), f"no x label on {ax.get_title()}"
    return fig


def scatters(ax) -> list:
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def data_lines(ax) -> list:
    return [line for line in ax.get_lines() if len(line.get_xdata()) > 2]


@pytest.mark.parametrize("which", ["bayes", "reml"])
def test_caterpillar_sleepstudy(which, sleep_fit, sleep_reml):
    fit = sleep_fit if which == "bayes" else sleep_reml
    fig = rendered(fit.plot_caterpillar())
    assert [ax.get_title() for ax in fig.axes] == ["Subject: (Intercept)", "Subject: Days"]
    for ax in fig.axes:
        (points,) = scatters(ax)
        assert len(points.get_offsets()) == 18
        (segments,) = [c for c in ax.collections if isinstance(c, LineCollection)]
        assert len(segments.get_segments()) == 18
    assert fig.axes[0].get_ylabel() == "Subject"
    assert len(fig.axes[0].get_yticklabels()) == 18
    # rows sorted by the intercepts: the points' y order follows their x order in panel 1
    xy = scatters(fig.axes[0])[0].get_offsets()
    assert np.all(np.diff(xy[np.argsort(xy[:, 1]), 0]) >= 0)
    label = "credible" if which == "bayes" else "conditional SD"
    assert label in fig.axes[0].get_xlabel()


def test_caterpillar_pupils_many_levels(pupils_fit):
    fig = rendered(pupils_fit.plot_caterpillar(group="primary_school_id", max_labels=20))
    (ax,) = fig.axes
    assert len(scatters(ax)[0].get_offsets()) == 50
    assert len(ax.get_yticklabels()) == 0  # 50 levels, above max_labels: not named


@pytest.mark.parametrize("which", ["bayes", "reml"])
def test_groups_sleepstudy(which, sleep_fit, sleep_reml):
    fit = sleep_fit if which == "bayes" else sleep_reml
    fig = rendered(fit.plot_groups("Days"))
    assert len(fig.axes) == 18 and fig.axes[0].get_title() == "Subject 308"
    for ax in fig.axes:
        assert len(scatters(ax)[0].get_offsets()) == 10
        assert len(data_lines(ax)) == 3  # partial, no and complete pooling
    # subject 308's no-pooling line is its own least-squares line
    ax = fig.axes[0]
    xy = scatters(ax)[0].get_offsets()
    slope = np.polyfit(xy[:, 0], xy[:, 1], 1)[0]
    none = [ln for ln in ax.get_lines() if ln.get_label() == "no pooling"][0]
    assert np.diff(none.get_ydata())[0] / np.diff(none.get_xdata())[0] == pytest.approx(slope)
    one = rendered(fit.plot_groups("Days", groups=[308, "309"], pooling=("partial",)))
    assert len(one.axes) == 2 and all(len(data_lines(ax)) == 1 for ax in one.axes)


def test_groups_pupils_categorical_x(pupils_fit):
    fig = rendered(pupils_fit.plot_groups("ses", group="secondary_school_id", max_groups=6))
    assert len(fig.axes) == 6
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["lowest", "2", "3", "4", "5", "highest"]
    with pytest.raises(hb.DataError, match="not a column the model uses"):
        pupils_fit.plot_groups("age")


def test_shrinkage(sleep_fit, sleep_reml, pupils_fit):
    for fit in (sleep_fit, sleep_reml):
        fig = rendered(fit.plot_shrinkage())
        (ax,) = fig.axes
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("(Intercept)", "Days")
        counts = sorted(len(c.get_offsets()) for c in scatters(ax))
        assert counts == [1, 1, 18, 18]  # complete pooling, population, 18 subjects twice
        assert len(ax.texts) == 18  # one arrow per subject
        # partial pooling pulls the subjects together: both coordinates spread less (a single
        # subject's slope may still move away, through the intercept-slope correlation)
        none = next(c for c in scatters(ax) if c.get_label() == "no pooling").get_offsets()
        part = next(c for c in scatters(ax) if c.get_label() == "partial pooling").get_offsets()
        assert np.all(part.std(axis=0) < none.std(axis=0))
        # the no-pooling points are each subject's own least-squares line
        frame = fit.design.frame
        own = np.polyfit(frame["Days"][:10], frame["Reaction"][:10], 1)[::-1]
        np.testing.assert_allclose(none[0], own)
    fig = rendered(pupils_fit.plot_shrinkage(group="primary_school_id"))
    assert len(data_lines(fig.axes[0])) == 0 and len(fig.axes[0].get_lines()) == 50 + 1


@pytest.mark.parametrize("which", ["bayes", "reml"])
def test_effect(which, sleep_fit, sleep_reml):
    fit = sleep_fit if which == "bayes" else sleep_reml
    fig = rendered(fit.plot_effect("Days"))
    (ax,) = fig.axes
    (line,) = data_lines(ax)
    beta = fit.fixef()["Estimate"]
    assert line.get_ydata()[0] == pytest.approx(beta["(Intercept)"], rel=0.01)
    (band,) = [c for c in ax.collections if c not in scatters(ax)]
    assert band.get_paths()  # the interval band
    assert len(scatters(ax)[0].get_offsets()) == 180


def test_effect_categorical(pupils_fit, pupils_reml):
    for fit in (pupils_fit, pupils_reml):
        fig = rendered(fit.plot_effect("ses"))
        assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["lowest", "2", "3", "4", "5", "highest"]
        assert len(fig.axes[0].containers) == 1  # one errorbar series: a point per level


@pytest.mark.parametrize("which", ["bayes", "reml"])
def test_diagnostics(which, sleep_fit, sleep_reml):
    fit = sleep_fit if which == "bayes" else sleep_reml
    fig = rendered(fit.plot_diagnostics())
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["Residuals against fitted values", "Normal QQ: residuals",
                      "Normal QQ: Subject (Intercept)", "Normal QQ: Subject Days"]
    assert len(scatters(fig.axes[0])[0].get_offsets()) == 180
    assert len(scatters(fig.axes[2])[0].get_offsets()) == 18


def test_diagnostics_pupils(pupils_reml):
    fig = rendered(pupils_reml.plot_diagnostics())
    assert len(fig.axes) == 4
    assert len(scatters(fig.axes[2])[0].get_offsets()) == 50  # primary schools
    assert len(scatters(fig.axes[3])[0].get_offsets()) == 30  # secondary schools


def test_trace(sleep_fit, pupils_fit):
    fig = rendered(sleep_fit.plot_trace())
    assert len(fig.axes) == 12  # 6 parameters x (density, trace)
    assert len(fig.axes[1].get_lines()) == 4  # a trace per chain
    assert len(fig.axes[1].get_lines()[0].get_xdata()) == 500
    assert len(rendered(pupils_fit.plot_trace()).axes) == 2 * 10


def test_prior_posterior(sleep_fit, pupils_fit):
    fig = rendered(sleep_fit.plot_prior_posterior(draws=500))
    assert len(fig.axes) == 6
    ax = fig.axes[0]
    assert ax.get_title() == "(Intercept)"
    assert len(ax.patches) == 1 + 59  # the prior's step outline and the posterior's 59 bars
    fig = rendered(pupils_fit.plot_prior_posterior(draws=300))
    assert len(fig.axes) == 10  # 7 fixed effects, 2 SDs, sigma
    assert fig.axes[-1].get_title() == "sigma"


def test_compare_plot(sleep_fit, sleep_reml, pupils_fit, pupils_reml):
    fig = rendered(hb.plot_compare(sleep_fit, sleep_reml))
    assert [ax.get_title(loc="left") for ax in fig.axes] == [
        "(Intercept)", "Days", "sd_(Intercept)|Subject", "sd_Days|Subject",
        "cor_Days.(Intercept)|Subject", "sigma"]
    for ax in fig.axes:
        assert len(ax.collections[0].get_segments()) == 2  # Bayes and REML intervals
    assert len(rendered(hb.plot_compare(pupils_fit, pupils_reml)).axes) == 10


def test_html_tables(sleep_fit, sleep_reml):
    # Bayes: random effects, group-level parameters, fixed effects; REML: random effects, fixed
    # effects and their correlation (the text's tables, as tables)
    for html, tables in ((sleep_fit.summary()._repr_html_(), 3), (sleep_fit._repr_html_(), 3),
                         (sleep_reml._repr_html_(), 3)):
        assert html.count("<table") == tables and "Subject" in html and "(Intercept)" in html
        assert "Number of obs: 180, groups:  Subject, 18" in html
    cmp = hb.compare(sleep_fit, sleep_reml)._repr_html_()
    assert "<table" in cmp and "sd_Days|Subject" in cmp and "REML" in cmp
    with pytest.warns(hb.HierbayesWarning, match="refitting"):
        table = hb.anova(hb.lmer("Reaction ~ Days + (1 | Subject)", sleep_reml.design.frame), sleep_reml)
    assert "<table" in table._repr_html_()


def test_groups_leave_crossed_factors_at_the_population(pupils_reml):
    # the partial-pooling line of secondary school k is the fixed effects plus k's effect only,
    # whatever the primary schools' effects
    fig = pupils_reml.plot_groups("ses", group="secondary_school_id", groups=["1"], pooling=("partial",))
    (line,) = data_lines(fig.axes[0])
    fx = pupils_reml.fixef()["Estimate"]
    r = pupils_reml.ranef()
    u = r[(r["group"] == "secondary_school_id") & (r["level"] == "1")]["Estimate"].iloc[0]
    expected = fx["(Intercept)"] + u  # sex at its reference level; ses "lowest" comes first
    assert line.get_ydata()[0] == pytest.approx(expected, rel=1e-12)
