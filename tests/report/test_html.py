"""A notebook's HTML summary says what the text says: every word and number of the printout."""

from __future__ import annotations

import html
import re

import pytest

import hierbayes as hb


def missing_from_html(obj) -> list[str]:
    """The printout's words that the HTML's visible text lacks."""
    visible = html.unescape(re.sub(r"<[^>]+>", " ", obj._repr_html_())).split()
    return [token for token in str(obj).split() if token not in set(visible)]


@pytest.fixture(scope="module")
def reml(sleepstudy):
    return hb.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)


@pytest.mark.parametrize("kind", ["lmer", "lmerTest", "glmer", "bayes", "anova", "compare"])
def test_html_has_every_word_of_the_text(kind, reml, sleepstudy, sleep_fit):
    if kind == "lmer":
        obj = reml.summary()
    elif kind == "lmerTest":
        obj = reml.summary(ddf="satterthwaite")
    elif kind == "glmer":
        obj = hb.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                       hb.datasets.load("cbpp"), family="binomial").summary()
    elif kind == "bayes":
        obj = sleep_fit.summary()
    elif kind == "anova":
        obj = hb.anova(hb.lmer("Reaction ~ 1 + (Days | Subject)", sleepstudy, reml=False),
                       hb.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, reml=False))
    else:
        obj = hb.compare(sleep_fit, reml)
    assert len(str(obj).split()) > 20
    assert missing_from_html(obj) == []
