# Reference powers for tests/report/test_power.py: simr's powerSim and powerCurve (likelihood-ratio
# test of Days) on sleepstudy's random-intercept model with the Days effect set to 1.5 ms/day,
# 1000 simulations each; the curve on the data extended to 30 subjects (simr's extend), cut at
# 6 and 30 subjects.
#
# Rerun from the repository root (about 10 minutes):
#
#     Rscript tests/r/power.R
#
# simr is not installable from CRAN on R 4.2 (its current version needs R >= 4.1 and the
# packages reformulas, binom and RLRsim); the committed file was made with simr 1.0.9-2,
# binom 1.1-1.1, RLRsim 3.1-9 and reformulas 0.4.3.1 installed from their sources
# (github.com/pitakakariki/simr, github.com/cran/{binom,RLRsim,reformulas}) with
# `R CMD INSTALL -l <lib> <dir>` and R_LIBS=<lib>, on R 4.2.2 with lme4 1.1.31. It reads the
# dataset hierbayes ships and writes tests/data/r/power.json (versions also in its "meta").

suppressPackageStartupMessages({
  library(lme4)
  library(simr)
  library(jsonlite)
})
if (!dir.exists(file.path("tests", "r"))) stop("Run this from the repository root.")

source(file.path("tests", "r", "common.R"))  # shipped(): the datasets as hierbayes ships them
sleepstudy <- shipped("sleepstudy")

fm <- lmer(Reaction ~ Days + (1 | Subject), sleepstudy)
fixef(fm)["Days"] <- 1.5
simrOptions(progress = FALSE)

ps <- powerSim(fm, fixed("Days", "lr"), nsim = 1000, seed = 22)
big <- extend(fm, along = "Subject", n = 30)
pc <- powerCurve(big, fixed("Days", "lr"), along = "Subject", breaks = c(6, 30), nsim = 1000,
                 seed = 23)

count <- function(p) list(successes = unbox(sum(p$pval < p$alpha, na.rm = TRUE)),
                          n_sims = unbox(p$n), nobs = unbox(p$nrow),
                          errors = unbox(nrow(p$errors)))
out <- list(
  meta = list(R = unbox(R.version.string), lme4 = unbox(as.character(packageVersion("lme4"))),
              simr = unbox(as.character(packageVersion("simr"))),
              jsonlite = unbox(as.character(packageVersion("jsonlite")))),
  model = unbox("Reaction ~ Days + (1 | Subject)"), effect = list(Days = unbox(1.5)),
  sigma = unbox(sigma(fm)), sd_subject = unbox(attr(VarCorr(fm)$Subject, "stddev")[[1]]),
  power_sim = count(ps),
  power_curve = list(levels = pc$nlevels, points = lapply(pc$ps, count))
)
writeLines(toJSON(out, digits = NA, na = "null", pretty = TRUE),
           file.path("tests", "data", "r", "power.json"))
