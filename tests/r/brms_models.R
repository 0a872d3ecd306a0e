# Bayesian reference fits for the GLMM tests: brms with its default priors on four of
# the models of tests/r/glmm_models.R (binomial with trials, negative binomial, Gamma with
# a log link, Poisson with an offset). Not run by CI: the tests read only the committed
# tests/data/r/brms_models.json.
#
# Rerun from the repository root, after tests/r/glmm_models.R (it reads the datasets
# that script wrote, through the column types and levels in glmm_models.json):
#
#     Rscript tests/r/brms_models.R
#
# About 6 minutes on a 2-core machine, nearly all of it compiling the four Stan models
# (each fit's times are in the JSON). Each fit: 4 chains of 1000 warm-up and 2500 kept
# draws, adapt_delta 0.95, a fixed seed, rstan's NUTS. Recorded: prior_summary(fit) as a
# table (the default priors spelled out, so that Python can set the same ones),
# posterior::summarise_draws (mean, sd, mcse_mean, rhat, ess_bulk, ess_tail, 2.5% and
# 97.5%) of the b_, sd_, r_ and shape draws, divergences, run times, and the Stan code.
#
# The committed file was made with R 4.2.2, brms 2.18.0, rstan 2.21.7, StanHeaders
# 2.21.0-7, posterior 1.4.0 (Debian's r-cran-* packages; brms needs libboost-dev's headers
# linked into BH/include/boost), as recorded in the JSON's "meta". Draws depend on the
# compiler and the machine as well as the seed: compare with Monte Carlo error, not digits.

suppressPackageStartupMessages({
  library(brms)
  library(posterior)
  library(jsonlite)
})

out_dir <- file.path("tests", "data", "r")
if (!dir.exists(file.path("tests", "r"))) stop("Run this from the repository root.")
source(file.path("tests", "r", "common.R"))  # read_back, draws_summary, prior_table
glmm <- fromJSON(file.path(out_dir, "glmm_models.json"))
dataset <- function(name) {
  meta <- glmm$datasets[[name]]
  read_back(file.path(out_dir, meta$file), meta$columns)
}

chains <- 4L
warmup <- 1000L
draws <- 2500L
seed <- 19L
adapt_delta <- 0.95
cores <- min(chains, parallel::detectCores())

models <- list(
  list(id = "cbpp_binomial", glmm_id = "cbpp_cbind", data = "cbpp",
       formula = "incidence | trials(size) ~ period + (1 | herd)", family = "binomial()"),
  list(id = "grouseticks_negbinomial", glmm_id = "grouseticks_nb_tmb", data = "grouseticks",
       formula = "TICKS ~ YEAR + HEIGHT_c + (1 | LOCATION)", family = "negbinomial()"),
  list(id = "sleep_gamma", glmm_id = "sleep_gamma_tmb", data = "sleepstudy",
       formula = "Reaction ~ Days + (1 | Subject)", family = 'Gamma(link = "log")'),
  list(id = "insurance_poisson_offset", glmm_id = "insurance_offset", data = "Insurance",
       formula = "Claims ~ Age + offset(log(Holders)) + (1 | District:Group)", family = "poisson()")
)

summary_table <- function(fit) {
  vars <- variables(fit)
  keep <- vars[grepl("^(b_|sd_|r_|shape$|Intercept$)", vars)]
  draws_summary(as_draws_array(fit), keep)
}

fits <- list()
for (s in models) {
  d <- dataset(s$data)
  t0 <- proc.time()[["elapsed"]]
  fit <- brm(as.formula(s$formula), data = d, family = eval(str2lang(s$family)),
             chains = chains, iter = warmup + draws, warmup = warmup, seed = seed, cores = cores,
             control = list(adapt_delta = adapt_delta), refresh = 0, silent = 2)
  total <- proc.time()[["elapsed"]] - t0
  elapsed <- rstan::get_elapsed_time(fit$fit)
  sampler <- rstan::get_sampler_params(fit$fit, inc_warmup = FALSE)
  max_depth <- fit$fit@stan_args[[1]]$control$max_treedepth
  if (is.null(max_depth)) max_depth <- 10L
  fits[[s$id]] <- list(
    id = unbox(s$id), glmm_id = unbox(s$glmm_id), dataset = unbox(s$data),
    formula = unbox(s$formula), family = unbox(family(fit)$family), link = unbox(family(fit)$link),
    chains = unbox(chains), warmup = unbox(warmup), draws = unbox(draws), seed = unbox(seed),
    adapt_delta = unbox(adapt_delta),
    priors = prior_table(fit),
    summary = summary_table(fit),
    divergent = unbox(sum(vapply(sampler, function(x) sum(x[, "divergent__"]), 0))),
    max_treedepth_hits = unbox(sum(vapply(sampler, function(x) sum(x[, "treedepth__"] >= max_depth), 0))),
    seconds = list(total = unbox(total), warmup = I(unname(elapsed[, "warmup"])),
                   sample = I(unname(elapsed[, "sample"])), cores = unbox(cores)),
    summary_text = I(capture.output(print(summary(fit)))),
    stancode = unbox(as.character(stancode(fit)))
  )
  cat(sprintf("%-26s %6.1f s (sampling %.1f s per chain), max rhat %.4f, min ess_bulk %.0f, %d divergent\n",
              s$id, total, mean(elapsed[, "warmup"] + elapsed[, "sample"]),
              max(fits[[s$id]]$summary$rhat), min(fits[[s$id]]$summary$ess_bulk), fits[[s$id]]$divergent))
}

meta <- list(
  script = unbox("tests/r/brms_models.R"),
  R = unbox(R.version.string),
  brms = unbox(as.character(packageVersion("brms"))),
  rstan = unbox(as.character(packageVersion("rstan"))),
  StanHeaders = unbox(as.character(packageVersion("StanHeaders"))),
  posterior = unbox(as.character(packageVersion("posterior"))),
  jsonlite = unbox(as.character(packageVersion("jsonlite"))),
  priors = unbox(paste("brms's defaults, as prior_summary(fit) lists them; the Intercept prior is on the",
                       "intercept of the centred design matrix (brms centres the population-level",
                       "columns), b_Intercept is that intercept moved back to the uncentred columns")),
  summary = unbox("posterior::summarise_draws of the b_, sd_, r_ and shape draws (all chains)"),
  glmm_id = unbox("the id of the same model in glmm_models.json")
)
out <- list(meta = meta, models = unname(fits))
writeLines(toJSON(out, digits = NA, na = "null", null = "null", pretty = TRUE),
           file.path(out_dir, "brms_models.json"))
cat(length(fits), "brms fits written to", file.path(out_dir, "brms_models.json"), "\n")
