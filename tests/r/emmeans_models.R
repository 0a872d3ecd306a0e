# Reference marginal means and contrasts for tests/report/test_emmeans.py, from R's emmeans.
#
# Rerun from the repository root:
#
#     Rscript tests/r/emmeans_models.R
#
# It writes tests/data/r/emmeans_models.json. It writes no data: it reads the csv.gz files
# that tests/r/lmer_models.R and tests/r/glmm_models.R wrote (Oats, Oats_cell, ergoStool,
# Machines, Orthodont, cbpp), with the column types and factor levels recorded in those
# scripts' JSON (which the Python side reads too), so that R and Python fit the same numbers.
#
# Each lmer model is fitted with the optimiser run to convergence (lme4's default stopping
# rule can leave theta ~1e-4 from the optimum on a flat criterion, which the df would show).
# The glmer model is fitted with glmer's defaults, which hierbayes's glmer follows step by
# step (its two optimisation stages and PIRLS's tolerance); a tightened glmer moves the
# fixed effects by 1e-4 and their SEs by 1% on cbpp.
# Each case is one emmeans() call; its emmeans and every contrast listed are summarised with
# infer = c(TRUE, TRUE): estimates, SE, df, confidence limits (adjusted as emmeans adjusts
# them for the contrasts), t or z ratios and p-values.
#
# The committed file was made with R 4.2.2, lme4 1.1.31, lmerTest 3.1.3, pbkrtest 0.5.2,
# emmeans 1.8.4.1 (Debian's r-cran-* packages); the versions are also in the JSON's "meta".

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(emmeans)
  library(jsonlite)
})

out_dir <- file.path("tests", "data", "r")
if (!dir.exists(file.path("tests", "r"))) stop("Run this from the repository root.")
source(file.path("tests", "r", "common.R"))  # read_back

emm_options(msg.interaction = FALSE, msg.nesting = FALSE)

# ---- data, as the other scripts wrote it -----------------------------------------------
described <- c(fromJSON(file.path(out_dir, "lmer_models.json"), simplifyVector = FALSE)$datasets,
               fromJSON(file.path(out_dir, "glmm_models.json"), simplifyVector = FALSE)$datasets)
dataset_names <- c("Oats", "Oats_cell", "ergoStool", "Machines", "Orthodont", "cbpp")
data_meta <- described[dataset_names]
data <- lapply(data_meta, function(m) read_back(file.path(out_dir, m$file), m$columns))
names(data) <- dataset_names

# ---- models ------------------------------------------------------------------------------
tight <- list(xtol_rel = 1e-12, ftol_abs = 1e-14, xtol_abs = 1e-12, maxeval = 1e6)
model_specs <- list(
  oats = list("Oats", "yield ~ Variety * factor(nitro) + (1 | Block/Variety)", "lmer"),
  oats_additive = list("Oats_cell", "yield ~ Variety + nitro_f + (1 | Block)", "lmer"),
  oats_empty_cell = list("Oats_cell", "yield ~ Variety * nitro_f + (1 | Block)", "lmer"),
  ergostool = list("ergoStool", "effort ~ Type + (1 | Subject)", "lmer"),
  machines = list("Machines", "score ~ Machine + (1 | Worker/Machine)", "lmer"),
  orthodont = list("Orthodont", "distance ~ age * Sex + (1 | Subject)", "lmer"),
  cbpp = list("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "glmer")
)
fits <- lapply(model_specs, function(s) {
  d <- data[[s[[1]]]]
  f <- as.formula(s[[2]])
  suppressMessages(if (s[[3]] == "lmer") {
    lmerTest::lmer(f, data = d, REML = TRUE, control = lmerControl(optCtrl = tight))
  } else {
    glmer(f, data = d, family = binomial)
  })
})

# ---- cases ---------------------------------------------------------------------------------
# contrasts: method is an emmeans method name or a named list of coefficient vectors;
# adjust NULL means the method's default
con <- function(method, adjust = NULL, type = NULL) list(method = method, adjust = adjust, type = type)
case <- function(id, model, specs, by = NULL, lmer_df = NULL, at = NULL, weights = NULL,
                 type = NULL, contrasts = list()) {
  list(id = id, model = model, specs = specs, by = by, lmer_df = lmer_df, at = at,
       weights = weights, type = type, contrasts = contrasts)
}
oats_pairs <- list(con("pairwise"), con("pairwise", "none"), con("revpairwise", "bonferroni"),
                   con("pairwise", "holm"))
nitro_contrasts <- list(con("poly"), con("trt.vs.ctrl"), con("trt.vs.ctrl", "bonferroni"),
                        con("eff"), con("pairwise", "holm"), con("pairwise", "sidak"),
                        con(list(low_high = c(1, 0, 0, -1), mid = c(-1, 1, 1, -1) / 2)))
cases <- list(
  case("oats_variety_by_nitro_kr", "oats", "Variety", by = "nitro", lmer_df = "kenward-roger",
       contrasts = oats_pairs),
  case("oats_variety_by_nitro_satt", "oats", "Variety", by = "nitro", lmer_df = "satterthwaite",
       contrasts = oats_pairs),
  case("oats_nitro_by_variety_kr", "oats", "nitro", by = "Variety", contrasts = list(con("poly"))),
  case("oats_nitro_kr", "oats", "nitro", lmer_df = "kenward-roger", contrasts = nitro_contrasts),
  case("oats_nitro_satt", "oats", "nitro", lmer_df = "satterthwaite", contrasts = nitro_contrasts),
  case("oats_nitro_asymptotic", "oats", "nitro", lmer_df = "asymptotic",
       contrasts = list(con("pairwise"), con("trt.vs.ctrl"))),
  case("oats_cells_kr", "oats", c("Variety", "nitro"), contrasts = list(con("pairwise"))),
  case("oats_additive_equal", "oats_additive", "Variety", weights = "equal",
       contrasts = list(con("pairwise"))),
  case("oats_additive_proportional", "oats_additive", "Variety", weights = "proportional"),
  case("oats_additive_outer", "oats_additive", "Variety", weights = "outer"),
  case("oats_additive_cells", "oats_additive", "nitro_f", weights = "cells",
       contrasts = list(con("pairwise"))),
  case("oats_additive_flat", "oats_additive", "nitro_f", weights = "flat"),
  case("oats_empty_cell_by", "oats_empty_cell", "Variety", by = "nitro_f",
       contrasts = list(con("pairwise"))),
  case("ergostool_kr", "ergostool", "Type", lmer_df = "kenward-roger",
       contrasts = list(con("pairwise"), con("trt.vs.ctrl", "bonferroni"), con("trt.vs.ctrl"),
                        con("eff"), con("revpairwise"))),
  case("ergostool_satt", "ergostool", "Type", lmer_df = "satterthwaite",
       contrasts = list(con("pairwise"), con("trt.vs.ctrl", "bonferroni"))),
  case("machines_kr", "machines", "Machine", lmer_df = "kenward-roger",
       contrasts = list(con("pairwise"))),
  case("machines_satt", "machines", "Machine", lmer_df = "satterthwaite",
       contrasts = list(con("pairwise"))),
  case("orthodont_sex", "orthodont", "Sex", contrasts = list(con("pairwise"))),
  case("orthodont_sex_by_age", "orthodont", "Sex", by = "age", at = list(age = c(8, 14)),
       contrasts = list(con("pairwise"))),
  case("orthodont_age_by_sex_satt", "orthodont", "age", by = "Sex", lmer_df = "satterthwaite",
       at = list(age = c(8, 11, 14)), contrasts = list(con("pairwise"), con("trt.vs.ctrl"))),
  case("cbpp_link", "cbpp", "period", contrasts = list(con("pairwise"), con("trt.vs.ctrl"))),
  case("cbpp_response", "cbpp", "period", type = "response",
       contrasts = list(con("pairwise"), con("trt.vs.ctrl", "bonferroni")))
)
ids <- vapply(cases, function(s) s$id, "")
stopifnot(!anyDuplicated(ids))

# ---- summaries ---------------------------------------------------------------------------
na_num <- function(x) I(as.numeric(x))
table_of <- function(s, label_cols) {
  # a summary's columns: labels, the estimate (named emmean, prob, estimate, odds.ratio, ...),
  # SE, df, the limits (lower.CL or asymp.LCL, ...), the t or z ratio and the p-value
  mesg <- as.character(attr(s, "mesg"))
  s <- as.data.frame(s)
  k <- length(label_cols)
  stopifnot(identical(names(s)[seq_len(k)], label_cols), names(s)[k + 2] == "SE")
  ratio <- intersect(c("t.ratio", "z.ratio"), names(s))
  labels <- lapply(s[label_cols], function(x) I(if (is.factor(x)) as.character(x) else x))
  list(columns = labels, estimate_name = unbox(names(s)[k + 1]),
       estimate = na_num(s[[k + 1]]), SE = na_num(s$SE), df = na_num(s$df),
       lower = na_num(s[[k + 4]]), upper = na_num(s[[k + 5]]),
       ratio_name = unbox(ratio), ratio = na_num(s[[ratio]]), p_value = na_num(s$p.value),
       mesg = I(mesg))
}

run_case <- function(cs) {
  args <- list(fits[[cs$model]], specs = cs$specs)
  if (!is.null(cs$by)) args$by <- cs$by
  if (!is.null(cs$lmer_df)) args$lmer.df <- cs$lmer_df
  if (!is.null(cs$at)) args$at <- cs$at
  if (!is.null(cs$weights)) args$weights <- cs$weights
  emm <- do.call(emmeans, args)
  type <- if (is.null(cs$type)) "link" else cs$type
  s <- summary(emm, infer = c(TRUE, TRUE), type = type)
  out_contrasts <- lapply(cs$contrasts, function(cn) {
    cargs <- list(emm, method = cn$method)
    if (!is.null(cn$adjust)) cargs$adjust <- cn$adjust
    cc <- do.call(contrast, cargs)
    cs2 <- summary(cc, infer = c(TRUE, TRUE), type = type)
    method <- if (is.list(cn$method)) lapply(cn$method, function(v) I(v)) else unbox(cn$method)
    c(list(method = method, adjust = if (is.null(cn$adjust)) NULL else unbox(cn$adjust)),
      table_of(cs2, c("contrast", cs$by)))
  })
  list(id = unbox(cs$id), model = unbox(cs$model), specs = I(cs$specs),
       by = I(if (is.null(cs$by)) character() else cs$by),
       lmer_df = if (is.null(cs$lmer_df)) NULL else unbox(cs$lmer_df),
       at = if (is.null(cs$at)) NULL else lapply(cs$at, I),
       weights = if (is.null(cs$weights)) NULL else unbox(cs$weights),
       type = unbox(type),
       emmeans = table_of(s, c(cs$specs, cs$by)),
       contrasts = out_contrasts)
}
results <- lapply(cases, run_case)

models_out <- lapply(names(model_specs), function(nm) {
  s <- model_specs[[nm]]
  list(id = unbox(nm), dataset = unbox(s[[1]]), formula = unbox(s[[2]]), engine = unbox(s[[3]]),
       fixef = I(unname(fixef(fits[[nm]]))), theta = I(unname(getME(fits[[nm]], "theta"))))
})

meta <- list(
  script = unbox("tests/r/emmeans_models.R"),
  R = unbox(R.version.string),
  lme4 = unbox(as.character(packageVersion("lme4"))),
  lmerTest = unbox(as.character(packageVersion("lmerTest"))),
  pbkrtest = unbox(as.character(packageVersion("pbkrtest"))),
  emmeans = unbox(as.character(packageVersion("emmeans"))),
  jsonlite = unbox(as.character(packageVersion("jsonlite")))
)
out <- list(meta = meta, datasets = I(dataset_names), models = models_out, cases = results)
writeLines(toJSON(out, digits = NA, na = "null", null = "null", pretty = TRUE, auto_unbox = FALSE),
           file.path(out_dir, "emmeans_models.json"))
cat(length(results), "cases written to", file.path(out_dir, "emmeans_models.json"), "\n")
