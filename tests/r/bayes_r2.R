# Reference numbers for tests/report/test_bayes_tools.py: brms's bayes_R2, hypothesis and
# conditional_effects on one fit of Reaction ~ Days + (Days | Subject) to sleepstudy.
# Not run by CI: the tests read only the committed tests/data/r/bayes_r2.json.
#
# Rerun from the repository root, after tests/r/lmer_models.R (it reads the sleepstudy
# that script wrote, through the column types and levels in lmer_models.json):
#
#     Rscript tests/r/bayes_r2.R
#
# About 2 minutes on a 2-core machine, nearly all of it compiling the Stan model. The fit:
# brm(Reaction ~ Days + (Days | Subject)) with the proper priors written below (the same as
# BRMS_PRIORS in tests/conftest.py; hypothesis()'s Savage-Dickey ratios need proper priors),
# sample_prior = "yes" (prior draws for those ratios), 4 chains of iter = 2000 (1000 warm-up,
# 1000 kept), seed 1, rstan's NUTS. Recorded: prior_summary(fit) as a table (so that Python
# sets the same priors), bayes_R2(fit) and bayes_R2(fit, re_formula = NA), hypothesis() of
# the hypotheses below (class "b", and class NULL for SDs and sigma), and
# conditional_effects(fit, "Days", robust = FALSE) (posterior means and SDs, as hierbayes's
# default point estimate). jsonlite writes brms's infinite Evid.Ratio (every draw on the
# hypothesis's side) as null, as it writes NA.
#
# The committed file was made with R 4.2.2, brms 2.18.0, rstan 2.21.7, posterior 1.4.0
# (recorded in the JSON's "meta"). Draws depend on the compiler and the machine as well as
# the seed: compare with Monte Carlo error, not digits.

suppressPackageStartupMessages({
  library(brms)
  library(jsonlite)
})

out_dir <- file.path("tests", "data", "r")
if (!dir.exists(file.path("tests", "r"))) stop("Run this from the repository root.")
source(file.path("tests", "r", "common.R"))  # read_back, prior_table
lmer_refs <- fromJSON(file.path(out_dir, "lmer_models.json"))
meta_sleep <- lmer_refs$datasets$sleepstudy
sleep <- read_back(file.path(out_dir, meta_sleep$file), meta_sleep$columns)

priors <- c(
  prior(normal(250, 100), class = Intercept),
  prior(normal(0, 50), class = b),
  prior(student_t(3, 0, 50), class = sd),
  prior(student_t(3, 0, 50), class = sigma),
  prior(lkj(2), class = cor)
)
seed <- 1L
chains <- 4L
iter <- 2000L
t0 <- proc.time()[["elapsed"]]
fit <- brm(Reaction ~ Days + (Days | Subject), data = sleep, prior = priors,
           sample_prior = "yes", chains = chains, iter = iter, seed = seed,
           cores = min(chains, parallel::detectCores()), refresh = 0, silent = 2)
seconds <- proc.time()[["elapsed"]] - t0

r2_table <- function(m) {
  m <- as.data.frame(m)
  list(estimate = unbox(m$Estimate), est_error = unbox(m$Est.Error),
       conf_low = unbox(m$Q2.5), conf_high = unbox(m$Q97.5))
}

hyp_table <- function(h) {
  t <- h$hypothesis
  list(hypothesis = I(t$Hypothesis), estimate = I(t$Estimate), est_error = I(t$Est.Error),
       conf_low = I(t$CI.Lower), conf_high = I(t$CI.Upper), evid_ratio = I(t$Evid.Ratio),
       post_prob = I(t$Post.Prob), star = I(t$Star))
}

# hierbayes names the same hypotheses by its own parameter names (the test maps them)
b_hyps <- c("Days > 5", "Days = 10", "Intercept + 7 * Days > 300", "Days - 2 > 0",
            "Days < 10", "2 * Days = 20")
other_hyps <- c("sd_Subject__Days > 5", "sigma = 25", "sd_Subject__Intercept = 25")
set.seed(seed)  # density_ratio's KDE is deterministic; this is for any resampling brms does
hyp_b <- hypothesis(fit, b_hyps, class = "b")
hyp_other <- hypothesis(fit, other_hyps, class = NULL)

ce <- conditional_effects(fit, "Days", robust = FALSE)$Days

out <- list(
  meta = list(
    script = unbox("tests/r/bayes_r2.R"),
    R = unbox(R.version.string),
    brms = unbox(as.character(packageVersion("brms"))),
    rstan = unbox(as.character(packageVersion("rstan"))),
    posterior = unbox(as.character(packageVersion("posterior"))),
    formula = unbox("Reaction ~ Days + (Days | Subject)"),
    dataset = unbox("sleepstudy"),
    chains = unbox(chains), iter = unbox(iter), warmup = unbox(iter %/% 2L), seed = unbox(seed),
    seconds = unbox(seconds),
    divergent = unbox(sum(nuts_params(fit, pars = "divergent__")$Value))
  ),
  priors = prior_table(fit),
  bayes_r2 = list(conditional = r2_table(bayes_R2(fit)),
                  marginal = r2_table(bayes_R2(fit, re_formula = NA))),
  hypothesis_b = c(list(input = I(b_hyps)), hyp_table(hyp_b)),
  hypothesis_other = c(list(input = I(other_hyps)), hyp_table(hyp_other)),
  conditional_effects = list(Days = I(ce$Days), estimate = I(ce$estimate__), est_error = I(ce$se__),
                             conf_low = I(ce$lower__), conf_high = I(ce$upper__),
                             held_fixed = unbox(paste("Subject = NA (re_formula = NA); Reaction",
                                                      "column is brms's mean of the response")))
)
writeLines(toJSON(out, digits = NA, na = "null", null = "null", pretty = TRUE),
           file.path(out_dir, "bayes_r2.json"))
print(hyp_b)
print(hyp_other)
print(out$bayes_r2)
cat(sprintf("brms fit and summaries in %.1f s, written to %s\n", seconds,
            file.path(out_dir, "bayes_r2.json")))
