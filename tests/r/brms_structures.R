# Bayesian reference fits for residual structures (issue 20): brms with its default priors
# on ../shared's gpa, with a log-linear model for sigma by occasion (brms's counterpart of
# nlme's varIdent, tests/r/structures_models.R's gpa_varident_reml) and with a stationary
# AR(1) residual covariance within student (ar(cov = TRUE), the counterpart of
# gpa_ar1_reml). Not run by CI: the tests read only the committed
# tests/data/r/brms_structures.json.
#
# Rerun from the repository root, after tests/r/structures_models.R (it checks gpa's
# factors against the description in structures_models.json):
#
#     Rscript tests/r/brms_structures.R
#
# About 14 minutes on a 2-core machine: some 3 minutes compiling each of the two Stan
# models, the rest sampling, 2 chains at a time (each fit's times are in the JSON). ../shared is found as $HIERBAYES_SHARED, else ../shared.
# Each fit: 4 chains of 1000 warm-up and 2500 kept draws, adapt_delta 0.95, a fixed seed,
# rstan's NUTS, 2 cores. Recorded: prior_summary(fit) as a table (the default priors
# spelled out, so that Python can set the same ones), posterior::summarise_draws (mean,
# sd, mcse_mean, rhat, ess_bulk, ess_tail, 2.5% and 97.5%) of the b_, sd_, sigma,
# b_sigma_ and ar draws (for gpa_sigma also sigma_occas<k>, the residual SD at each
# occasion, exp(b_sigma_Intercept + b_sigma_occas<k>); for gpa_ar1 also sigma_marginal =
# sigma / sqrt(1 - ar[1]^2): brms's sigma there is the innovation SD, see
# meta$ar_cov_sigma), divergences, run times, and the Stan code.
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
source(file.path("tests", "r", "common.R"))  # column_info, draws_summary, prior_table
shared <- Sys.getenv("HIERBAYES_SHARED", file.path("..", "shared"))

# gpa as structures_models.R makes it (and checked against its description there)
gpa_raw <- read.csv(file.path(shared, "data", "gpa.csv"))
gpa <- data.frame(student = factor(gpa_raw$student), occasion = gpa_raw$occasion, gpa = gpa_raw$gpa)
gpa$occas <- factor(gpa$occasion)
structures <- fromJSON(file.path(out_dir, "structures_models.json"), simplifyVector = FALSE)
described <- structures$datasets$gpa$columns
for (col in names(gpa)) {
  info <- column_info(gpa[[col]])
  stopifnot(identical(as.character(info$type), described[[col]]$type))
  if (is.factor(gpa[[col]])) stopifnot(identical(levels(gpa[[col]]), unlist(described[[col]]$levels)))
}

chains <- 4L
warmup <- 1000L
draws <- 2500L
seed <- 20L
adapt_delta <- 0.95
cores <- 2L

models <- list(
  list(id = "gpa_sigma", structures_id = "gpa_varident_reml", data = "gpa",
       formula = "bf(gpa ~ occasion + (1 | student), sigma ~ occas)", family = "gaussian()",
       note = paste("log(sigma) = b_sigma_Intercept + b_sigma_occas<k> (treatment contrasts, occasion 0 the",
                    "reference): the residual SD of occasion k is sigma_occas<k>, and its ratio to occasion 0's,",
                    "exp(b_sigma_occas<k>), is nlme's varIdent coefficient")),
  list(id = "gpa_ar1", structures_id = "gpa_ar1_reml", data = "gpa",
       formula = "gpa ~ occasion + (1 | student) + ar(time = occasion, gr = student, p = 1, cov = TRUE)",
       family = "gaussian()")
)

summary_table <- function(fit, derived = NULL) {
  dr <- as_draws_df(fit)
  if (!is.null(derived)) dr <- do.call(mutate_variables, c(list(dr), derived))
  vars <- variables(dr)
  keep <- vars[grepl("^(b_|sd_|sigma$|sigma_occas|sigma_marginal$|ar\\[|Intercept$|Intercept_sigma$)", vars)]
  draws_summary(dr, keep)
}

# sigma_occas<k> = exp(b_sigma_Intercept + b_sigma_occas<k>), occasion 0 the reference
sigma_by_occasion <- function() {
  ex <- list(sigma_occas0 = quote(exp(b_sigma_Intercept)))
  for (k in levels(gpa$occas)[-1]) {
    ex[[paste0("sigma_occas", k)]] <- str2lang(sprintf("exp(b_sigma_Intercept + b_sigma_occas%s)", k))
  }
  ex
}

# the marginal SD of the AR(1) residuals (see meta$ar_cov_sigma)
sigma_marginal <- list(sigma_marginal = quote(sigma / sqrt(1 - `ar[1]`^2)))

# What the generated Stan code does with sigma under ar(cov = TRUE): the function that
# builds the AR(1) factor, the likelihood function that scales it, and the statements
# that call them
ar_code_facts <- function(code) {
  lines <- strsplit(code, "\n", fixed = TRUE)[[1]]
  body <- function(signature) {
    from <- grep(signature, lines, fixed = TRUE)[1]
    indent <- sub("\\S.*$", "", lines[from])
    to <- from - 1 + which(lines[from:length(lines)] == paste0(indent, "}"))[1]
    lines[from:to]
  }
  list(cholesky_cor_ar1 = I(body("matrix cholesky_cor_ar1(real ar, int nrows)")),
       normal_time_hom_lpdf = I(body("real normal_time_hom_lpdf(vector y")),
       statements = I(trimws(grep("cholesky_cor_ar1\\(ar|normal_time_hom_lpdf\\(Y", lines, value = TRUE))))
}

fits <- list()
for (s in models) {
  d <- get(s$data)
  t0 <- proc.time()[["elapsed"]]
  fit <- brm(eval(str2lang(s$formula)), data = d, family = eval(str2lang(s$family)),
             chains = chains, iter = warmup + draws, warmup = warmup, seed = seed, cores = cores,
             control = list(adapt_delta = adapt_delta), refresh = 0, silent = 2)
  total <- proc.time()[["elapsed"]] - t0
  elapsed <- rstan::get_elapsed_time(fit$fit)
  sampler <- rstan::get_sampler_params(fit$fit, inc_warmup = FALSE)
  max_depth <- fit$fit@stan_args[[1]]$control$max_treedepth
  if (is.null(max_depth)) max_depth <- 10L
  code <- as.character(stancode(fit))
  f <- list(
    id = unbox(s$id), structures_id = unbox(s$structures_id), dataset = unbox(s$data),
    formula = unbox(s$formula), family = unbox(family(fit)$family), link = unbox(family(fit)$link),
    note = unbox(if (is.null(s$note)) NA else s$note),
    chains = unbox(chains), warmup = unbox(warmup), draws = unbox(draws), seed = unbox(seed),
    adapt_delta = unbox(adapt_delta),
    priors = prior_table(fit),
    summary = summary_table(fit, if (s$id == "gpa_sigma") sigma_by_occasion() else sigma_marginal),
    divergent = unbox(sum(vapply(sampler, function(x) sum(x[, "divergent__"]), 0))),
    max_treedepth_hits = unbox(sum(vapply(sampler, function(x) sum(x[, "treedepth__"] >= max_depth), 0))),
    seconds = list(total = unbox(total), warmup = I(unname(elapsed[, "warmup"])),
                   sample = I(unname(elapsed[, "sample"])), cores = unbox(cores)),
    summary_text = I(capture.output(print(summary(fit)))),
    stancode = unbox(code)
  )
  if (s$id == "gpa_ar1") {
    f$ar_code <- ar_code_facts(code)
    # the claim of meta$ar_cov_sigma, checked on this code
    stopifnot(any(grepl("return cholesky_decompose(mat ./ (1 - ar^2));", f$ar_code$cholesky_cor_ar1, fixed = TRUE)),
              any(grepl("L = sigma * chol_cor[1:nobs[i], 1:nobs[i]];", f$ar_code$normal_time_hom_lpdf, fixed = TRUE)),
              any(grepl("chol_cor = cholesky_cor_ar1(ar[1], max_nobs_tg);", f$ar_code$statements, fixed = TRUE)),
              any(grepl("normal_time_hom_lpdf(Y | mu, sigma, chol_cor", f$ar_code$statements, fixed = TRUE)))
  }
  fits[[s$id]] <- f
  cat(sprintf("%-10s %6.1f s (sampling %.1f s per chain), max rhat %.4f, min ess_bulk %.0f, %d divergent\n",
              s$id, total, mean(elapsed[, "warmup"] + elapsed[, "sample"]),
              max(f$summary$rhat), min(f$summary$ess_bulk), f$divergent))
}

meta <- list(
  script = unbox("tests/r/brms_structures.R"),
  R = unbox(R.version.string),
  brms = unbox(as.character(packageVersion("brms"))),
  rstan = unbox(as.character(packageVersion("rstan"))),
  StanHeaders = unbox(as.character(packageVersion("StanHeaders"))),
  posterior = unbox(as.character(packageVersion("posterior"))),
  jsonlite = unbox(as.character(packageVersion("jsonlite"))),
  data = unbox(paste("../shared/data/gpa.csv with student = factor(student), occasion (integer 0..5), gpa and",
                     "occas = factor(occasion), as structures_models.json's datasets$gpa describes")),
  priors = unbox(paste("brms's defaults, as prior_summary(fit) lists them; the Intercept prior is on the",
                       "intercept of the centred design matrix (brms centres the population-level",
                       "columns), b_Intercept is that intercept moved back to the uncentred columns;",
                       "likewise Intercept_sigma and b_sigma_Intercept for the sigma model")),
  summary = unbox(paste("posterior::summarise_draws of the b_, sd_, sigma, b_sigma_ and ar draws (all chains);",
                        "for gpa_sigma also sigma_occas<k> = exp(b_sigma_Intercept + b_sigma_occas<k>), for",
                        "gpa_ar1 sigma_marginal = sigma / sqrt(1 - ar[1]^2)")),
  structures_id = unbox("the id of the nlme fit of the same residual structure in structures_models.json"),
  ar_cov_sigma = unbox(paste(
    "ar(p = 1, cov = TRUE) in brms 2.18: the Stan function cholesky_cor_ar1(ar, n) builds the matrix",
    "ar^|i - j| and returns cholesky_decompose(mat ./ (1 - ar^2)), and normal_time_hom_lpdf scales that",
    "factor by sigma, so a student's residual covariance is sigma^2 / (1 - ar^2) * ar^|i - j|. sigma is the",
    "SD of the AR(1) innovations, not the marginal SD of the residuals: the marginal SD, nlme's sigma",
    "(corAR1 is a correlation matrix, so nlme's residual covariance is sigma^2 * phi^|i - j|), is",
    "sigma / sqrt(1 - ar^2), summarised as sigma_marginal. ar[1] is nlme's phi. The correlation follows",
    "the row order within student (begin_tg/end_tg blocks of consecutive rows, no time gaps handled by",
    "this code); gpa's rows are sorted by student and occasion with no gaps. The ar coefficient has",
    "bounds (-1, 1) and no prior statement (uniform)."))
)
out <- list(meta = meta, models = unname(fits))
writeLines(toJSON(out, digits = NA, na = "null", null = "null", pretty = TRUE),
           file.path(out_dir, "brms_structures.json"))
cat(length(fits), "brms fits written to", file.path(out_dir, "brms_structures.json"), "\n")
