# Reference printouts for tests/report/test_printouts.py: summary() of lmer, lmerTest and
# glmer fits and anova() between lmer fits, as R prints them, line by line.
#
# Rerun from the repository root (a few seconds):
#
#     Rscript tests/r/printouts.R
#
# It reads the datasets hierbayes ships (hierbayes/datasets/data/*.csv.gz, strings as
# factors with R's default alphabetical levels, which hb.datasets.load also uses) so both
# sides fit the same numbers, and writes tests/data/r/printouts.json: for each case the
# formula, settings and the printed lines (capture.output). Python prints its fit of the
# same model and the test compares line by line.
#
# The committed file was made with R 4.2.2, lme4 1.1.31, lmerTest 3.1.3, pbkrtest 0.5.2,
# jsonlite 1.8.4 (Debian's r-cran-* packages); the versions are also in the JSON's "meta".

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})
if (!dir.exists(file.path("tests", "r"))) stop("Run this from the repository root.")
options(width = 80, digits = 7, show.signif.stars = TRUE, useFancyQuotes = FALSE)

source(file.path("tests", "r", "common.R"))  # shipped(): the datasets as hierbayes ships them
sleepstudy <- shipped("sleepstudy")
cbpp <- shipped("cbpp")
Penicillin <- shipped("Penicillin")
Pastes <- shipped("Pastes")
gpa <- shipped("gpa")

printed <- function(x) unbox(paste(capture.output(print(x)), collapse = "\n"))
cases <- list()
add <- function(id, kind, formula, data, text, ...) {
  cases[[length(cases) + 1]] <<- list(id = unbox(id), kind = unbox(kind), formula = unbox(formula),
                                      data = unbox(data), settings = list(...), text = text)
}

m_reml <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
add("sleep_reml", "lmer", "Reaction ~ Days + (Days | Subject)", "sleepstudy", printed(summary(m_reml)),
    REML = unbox(TRUE))
m_ml <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)
add("sleep_ml", "lmer", "Reaction ~ Days + (Days | Subject)", "sleepstudy", printed(summary(m_ml)),
    REML = unbox(FALSE))
m_t <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
add("sleep_satterthwaite", "lmer", "Reaction ~ Days + (Days | Subject)", "sleepstudy",
    printed(summary(m_t)), REML = unbox(TRUE), ddf = unbox("satterthwaite"))
add("sleep_kr", "lmer", "Reaction ~ Days + (Days | Subject)", "sleepstudy",
    printed(summary(m_t, ddf = "Kenward-Roger")), REML = unbox(TRUE), ddf = unbox("kenward-roger"))
m_int <- lme4::lmer(Reaction ~ Days + (1 | Subject), sleepstudy)
add("sleep_anova", "anova", "Reaction ~ Days + (1 | Subject); Reaction ~ Days + (Days | Subject)",
    "sleepstudy", printed(anova(m_int, m_reml)), names = c("m_int", "m_reml"))
m_uncor <- lme4::lmer(Reaction ~ Days + (Days || Subject), sleepstudy)
add("sleep_uncorrelated", "lmer", "Reaction ~ Days + (Days || Subject)", "sleepstudy",
    printed(summary(m_uncor)), REML = unbox(TRUE))
m_cross <- lme4::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin)
add("penicillin_crossed", "lmer", "diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin",
    printed(summary(m_cross)), REML = unbox(TRUE))
m_nest <- lme4::lmer(strength ~ 1 + (1 | batch/cask), Pastes)
add("pastes_nested", "lmer", "strength ~ 1 + (1 | batch/cask)", "Pastes", printed(summary(m_nest)),
    REML = unbox(TRUE))
m_gpa <- lmerTest::lmer(gpa ~ occasion + sex + job + (1 + occasion | student), gpa)
add("gpa_slope_satterthwaite", "lmer", "gpa ~ occasion + sex + job + (1 + occasion | student)",
    "gpa", printed(summary(m_gpa)), REML = unbox(TRUE), ddf = unbox("satterthwaite"))
m_cbpp <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial)
add("cbpp_glmer", "glmer", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp",
    printed(summary(m_cbpp)), family = unbox("binomial"))

out <- list(
  meta = list(R = unbox(R.version.string), lme4 = unbox(as.character(packageVersion("lme4"))),
              lmerTest = unbox(as.character(packageVersion("lmerTest"))),
              pbkrtest = unbox(as.character(packageVersion("pbkrtest"))),
              jsonlite = unbox(as.character(packageVersion("jsonlite")))),
  cases = cases
)
writeLines(toJSON(out, pretty = TRUE), file.path("tests", "data", "r", "printouts.json"))
