# Reference tables for tests/report/test_tidy.py: broom.mixed's tidy() and glance() of lmer,
# lmerTest and glmer fits, and mixedup's var_prop and random-coefficient SEs computed as
# mixedup computes them (mixedup is not on CRAN, so its two formulas are written out below).
#
# Rerun from the repository root (under a minute, the profile intervals take most of it):
#
#     Rscript tests/r/tidy.R
#
# It reads the datasets hierbayes ships (hierbayes/datasets/data/*.csv.gz) and writes
# tests/data/r/tidy.json. The committed file was made with R 4.2.2, lme4 1.1.31,
# lmerTest 3.1.3, broom.mixed 0.2.9.4, jsonlite 1.8.4 (versions also in the JSON's "meta").

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(broom.mixed)
  library(jsonlite)
})
if (!dir.exists(file.path("tests", "r"))) stop("Run this from the repository root.")

source(file.path("tests", "r", "common.R"))  # shipped(): the datasets as hierbayes ships them
sleepstudy <- shipped("sleepstudy")
cbpp <- shipped("cbpp")

frame <- function(x) {
  x <- as.data.frame(x)
  for (col in names(x)) if (is.factor(x[[col]])) x[[col]] <- as.character(x[[col]])
  x
}

m <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
mt <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
g <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial)

# mixedup::extract_vc: each variance over the sum of all of them, the residual's included
vc <- as.data.frame(VarCorr(m))
vars <- vc[is.na(vc$var2), ]
var_prop <- vars$vcov / sum(vars$vcov)

# mixedup::extract_random_coefs: se = sqrt(se(fixef)^2 + condsd^2), ignoring their covariance
re <- as.data.frame(ranef(m, condVar = TRUE))
se_fixed <- sqrt(diag(as.matrix(vcov(m))))
co <- coef(m)$Subject
ran_coefs <- do.call(rbind, lapply(colnames(co), function(term) {
  r <- re[re$term == term, ]
  data.frame(level = as.character(r$grp), term = term, estimate = co[as.character(r$grp), term],
             std_error = sqrt(se_fixed[[term]]^2 + r$condsd^2))
}))

out <- list(
  meta = list(R = unbox(R.version.string), lme4 = unbox(as.character(packageVersion("lme4"))),
              lmerTest = unbox(as.character(packageVersion("lmerTest"))),
              broom.mixed = unbox(as.character(packageVersion("broom.mixed"))),
              jsonlite = unbox(as.character(packageVersion("jsonlite")))),
  sleep = list(
    tidy_wald = frame(tidy(m, conf.int = TRUE)),
    tidy_profile = frame(tidy(m, conf.int = TRUE, conf.method = "profile")),
    ran_vals = frame(tidy(m, effects = "ran_vals", conf.int = TRUE)),
    ran_coefs = frame(tidy(m, effects = "ran_coefs")),
    glance = frame(glance(m)),
    var_prop = var_prop,
    ran_coefs_se = ran_coefs,
    lmertest = frame(tidy(mt, effects = "fixed", conf.int = TRUE))
  ),
  cbpp = list(tidy = frame(tidy(g, conf.int = TRUE)), glance = frame(glance(g)))
)
writeLines(toJSON(out, digits = NA, na = "null", pretty = TRUE),
           file.path("tests", "data", "r", "tidy.json"))
