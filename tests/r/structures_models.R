# Reference fits for residual variance and correlation structures (issue 20): nlme's lme
# with varIdent, varExp, corAR1 (with gaps in time, and on shuffled rows), corCAR1 (unequal
# spacing) and their combinations, REML and ML; and glmmTMB's covariance-structure terms
# ar1(), cs(), diag() and us(), ML and REML. Data from nlme, lme4 and ../shared's gpa.
#
# Rerun from the repository root (about 20 s):
#
#     Rscript tests/r/structures_models.R
#
# ../shared is found as $HIERBAYES_SHARED, else ../shared. The script writes
# tests/data/r/<dataset>.csv.gz (only the columns the models use; Orthodont, BodyWeight,
# Machines and sleepstudy are the files tests/r/lmer_models.R writes, and must come out
# byte for byte the same, else the script stops) and tests/data/r/structures_models.json
# (every fit, plus the datasets' column types and factor levels). Each dataset is
# written, read back, and fitted as read back, so R and Python fit the same numbers
# (tests/r/common.R). gpa is read from ../shared/data/gpa.csv, not copied: its entry
# names the file and the factors made from it (student = factor(student), levels sorted
# numerically "1".."200"; occas = factor(occasion), levels "0".."5", which replaces the
# file's own text column occas).
#
# The committed files were made with R 4.2.2, nlme 3.1.162, lme4 1.1.31, glmmTMB 1.1.5,
# TMB 1.9.2, Matrix 1.5.3, jsonlite 1.8.4 (Debian's r-cran-* packages, reference BLAS);
# the versions are also recorded in the JSON's "meta".
#
# Per fit: logLik, AIC, BIC, nobs, fixef and their SEs from the fit's own vcov, sigma,
# the random-effect SDs and correlations, the variance function's and the correlation
# structure's parameters (nlme) or each covariance term's SDs and correlation (glmmTMB),
# the full vectors of fitted values (conditional and population level) and residuals
# (response, Pearson, normalized) in the data's row order and ranef as a table (for the
# fits in meta$vectors_kept_for only), glmmTMB's SEs and the SEs conditional on the
# variance parameters (lme4's and nlme's definition, fixef_se_conditional), and
# convergence information. Each nlme fit is also refitted with nlminb run to tight
# tolerances ("tight_fit"), to show how far nlme's default stop is from the optimum.
# meta$notes has what was found about nlme's handling of gaps, of row order, and of its
# normalized residuals, and about glmmTMB's parameterisations.

suppressPackageStartupMessages({
  library(nlme)
  library(lme4)
  library(glmmTMB)
  library(jsonlite)
})

out_dir <- file.path("tests", "data", "r")
if (!dir.exists(file.path("tests", "r"))) stop("Run this from the repository root.")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
source(file.path("tests", "r", "common.R"))  # plain, column_info, read_back, exact_text, write_dataset, tmb_varcorr
shared <- Sys.getenv("HIERBAYES_SHARED", file.path("..", "shared"))
script_t0 <- proc.time()[["elapsed"]]

# ---- datasets (deterministic changes only) ----------------------------------------
# gpa stays in ../shared; the factors are made here and described in the JSON
gpa_raw <- read.csv(file.path(shared, "data", "gpa.csv"))
gpa <- data.frame(student = factor(gpa_raw$student), occasion = gpa_raw$occasion, gpa = gpa_raw$gpa)
gpa$occas <- factor(gpa$occasion)
stopifnot(is.integer(gpa$occasion), identical(levels(gpa$student), as.character(1:200)),
          identical(levels(gpa$occas), as.character(0:5)), all(table(gpa$student) == 6),
          all(diff(as.integer(gpa$student)) >= 0))

datasets <- list()
sources <- list()
add <- function(name, source, d) {
  datasets[[name]] <<- d
  sources[[name]] <<- source
}

# gaps in occasion: drop the rows with (as.integer(student) * 7 + occasion) %% 9 == 0 and
# occasion > 0 (112 of the 1200; 112 students keep 5 occasions, 88 all 6)
gap_drop <- (as.integer(gpa$student) * 7 + gpa$occasion) %% 9 == 0 & gpa$occasion > 0
gaps <- gpa[!gap_drop, ]
gaps$gpa_row <- which(!gap_drop)
rownames(gaps) <- NULL
add("gpa_gaps", paste("../shared/data/gpa.csv without the rows where (as.integer(student) * 7 + occasion) %% 9 == 0",
                      "and occasion > 0; gpa_row is the row's number in gpa.csv (1-based, header not counted)"), gaps)
# the same rows in a deterministic shuffled order: row k of gpa_gaps_shuffled is row
# ((k - 1) * 389) %% n + 1 of gpa_gaps (389 is prime and n = 1088 is not a multiple of it)
n_gaps <- nrow(gaps)
perm <- ((seq_len(n_gaps) - 1L) * 389L) %% n_gaps + 1L
stopifnot(!anyDuplicated(perm), n_gaps %% 389L != 0)
shuffled <- gaps[perm, ]
rownames(shuffled) <- NULL
add("gpa_gaps_shuffled", paste("gpa_gaps with its rows shuffled: row k is gpa_gaps's row ((k - 1) * 389) %% 1088 + 1"),
    shuffled)
orth <- plain(nlme::Orthodont, c("distance", "age", "Subject", "Sex"))
orth$age_months <- 12 * orth$age  # as tests/r/lmer_models.R writes it (the models here do not use it)
add("Orthodont", "nlme::Orthodont, plus age_months = 12 * age", orth)
ovary <- plain(nlme::Ovary, c("Mare", "Time", "follicles"))
ovary$sin2pi <- sin(2 * pi * ovary$Time)
ovary$cos2pi <- cos(2 * pi * ovary$Time)
add("Ovary", paste("nlme::Ovary (Mare is an ordered factor), plus sin2pi = sin(2 * pi * Time) and",
                   "cos2pi = cos(2 * pi * Time)"), ovary)
add("BodyWeight", "nlme::BodyWeight", plain(nlme::BodyWeight, c("weight", "Time", "Rat", "Diet")))
add("Machines", "nlme::Machines", plain(nlme::Machines, c("Worker", "Machine", "score")))
add("sleepstudy", "lme4::sleepstudy", plain(lme4::sleepstudy, c("Reaction", "Days", "Subject")))

data_meta <- list()
fitting_data <- list()
for (name in names(datasets)) {
  written <- write_dataset(datasets[[name]], name, sources[[name]], out_dir, keep_existing = TRUE)
  fitting_data[[name]] <- written$data
  data_meta[[name]] <- written$meta
}
fitting_data[["gpa"]] <- gpa
data_meta[["gpa"]] <- list(
  file = unbox("data/gpa.csv"), shared = unbox(TRUE),
  source = unbox(paste("../shared/data/gpa.csv read with read.csv; the models use student = factor(student)",
                       "(levels sorted numerically), occasion (integer 0..5) and gpa, and occas = factor(occasion)",
                       "(levels 0..5), which replaces the file's own text column occas")),
  nrow = unbox(nrow(gpa)), columns = lapply(gpa, column_info))

fit_env <- new.env()
for (name in names(fitting_data)) assign(name, fitting_data[[name]], envir = fit_env)

# ---- models ---------------------------------------------------------------------
lme_spec <- function(id, data, fixed, random, weights = NULL, correlation = NULL, method = "REML",
                     group = NULL, note = NULL) {
  list(id = id, engine = "lme", data = data, fixed = fixed, random = random, weights = weights,
       correlation = correlation, method = method, group = group, note = note)
}
tmb_spec <- function(id, data, formula, REML = FALSE, note = NULL) {
  list(id = id, engine = "glmmTMB", data = data, formula = formula, REML = REML, note = note)
}
vi_occ <- "varIdent(form = ~1 | occasion)"
ar1_occ <- "corAR1(form = ~occasion)"
bw_car1 <- "corCAR1(form = ~Time | Rat)"
gaps_note <- paste(
  "students with a missing occasion have non-unit steps in occasion, so nlme's Initialize.corAR1",
  "turns the corAR1 into corARMA(p = 1, q = 0), whose correlation is phi^|t_i - t_j| at the",
  "occasions t (see meta$notes$nlme_gaps); corStruct_class records the class after that switch")
models <- list(
  lme_spec("gpa_homo_reml", "gpa", "gpa ~ occasion", "~1 | student"),
  lme_spec("gpa_varident_reml", "gpa", "gpa ~ occasion", "~1 | student", weights = vi_occ),
  lme_spec("gpa_varident_ml", "gpa", "gpa ~ occasion", "~1 | student", weights = vi_occ, method = "ML",
           note = paste("gpa_varident_reml by ML: the same model as gpa_tmb_diag_ml (a random intercept plus",
                        "a residual variance per occasion), whose logLik it matches (meta$checks)")),
  lme_spec("gpa_ar1_reml", "gpa", "gpa ~ occasion", "~1 | student", correlation = ar1_occ),
  lme_spec("gpa_varident_ar1_reml", "gpa", "gpa ~ occasion", "~1 | student", weights = vi_occ,
           correlation = ar1_occ),
  lme_spec("gpa_varident_ar1_ml", "gpa", "gpa ~ occasion", "~1 | student", weights = vi_occ,
           correlation = ar1_occ, method = "ML"),
  lme_spec("gpa_gaps_ar1_reml", "gpa_gaps", "gpa ~ occasion", "~1 | student", correlation = ar1_occ,
           note = gaps_note),
  lme_spec("gpa_gaps_shuffled_ar1_reml", "gpa_gaps_shuffled", "gpa ~ occasion", "~1 | student",
           correlation = ar1_occ,
           note = paste(gaps_note, "(and here the shuffled order alone gives non-unit steps). The rows",
                        "of gpa_gaps_ar1_reml in another order: logLik, estimates, fitted values and response",
                        "and Pearson residuals are those of gpa_gaps_ar1_reml permuted (meta$checks); nlme's",
                        "resid_normalized is not (meta$notes$nlme_row_order)")),
  lme_spec("orthodont_varident_reml", "Orthodont", "distance ~ age + Sex", "~1 | Subject",
           weights = "varIdent(form = ~1 | Sex)",
           note = paste("the reference stratum is Male, the first stratum in the data sorted by Subject",
                        "(Subject's first level is M16), not Sex's first level (also Male here)")),
  lme_spec("orthodont_varident_ml", "Orthodont", "distance ~ age + Sex", "~1 | Subject",
           weights = "varIdent(form = ~1 | Sex)", method = "ML"),
  lme_spec("orthodont_varexp_reml", "Orthodont", "distance ~ age + Sex", "~1 | Subject",
           weights = "varExp(form = ~age)", note = "residual SD sigma * exp(expon * age)"),
  lme_spec("ovary_ar1_reml", "Ovary", "follicles ~ sin2pi + cos2pi", "~1 | Mare", correlation = "corAR1()",
           note = paste("corAR1() without a covariate: lme takes the grouping from random (~1 | Mare) and the",
                        "covariate is the row's position within its Mare in the data order (each Mare's rows",
                        "are contiguous and in Time order; the Mares are in label order 1..11, not in the",
                        "ordered factor's level order)")),
  lme_spec("bodyweight_car1_reml", "BodyWeight", "weight ~ Time * Diet", "~1 | Rat", correlation = bw_car1,
           note = paste("corCAR1: correlation phi^|t_i - t_j| with Time in days (1, 8, ..., 43, 44, ..., 64);",
                        "converges without rescaling Time")),
  lme_spec("bodyweight_car1_ml", "BodyWeight", "weight ~ Time * Diet", "~1 | Rat", correlation = bw_car1,
           method = "ML"),
  lme_spec("bodyweight_varident_car1_reml", "BodyWeight", "weight ~ Time * Diet", "~1 | Rat",
           weights = "varIdent(form = ~1 | Diet)", correlation = bw_car1),
  tmb_spec("gpa_tmb_ar1_ml", "gpa", "gpa ~ occasion + ar1(0 + occas | student) + (1 | student)",
           note = paste("the (1 | student) SD goes to the boundary (about 1.7e-5, log SD about -11, where the",
                        "likelihood is flat in it): the ar1 term (SD 0.305, rho 0.844) takes the",
                        "between-student variance. Compare logLik, fixef, sigma and the ar1 parameters, not the",
                        "intercept SD; gpa_tmb_ar1_noint_ml, without (1 | student), has the same logLik")),
  tmb_spec("gpa_tmb_ar1_reml", "gpa", "gpa ~ occasion + ar1(0 + occas | student) + (1 | student)", REML = TRUE,
           note = "as gpa_tmb_ar1_ml: the (1 | student) SD is at the boundary"),
  tmb_spec("gpa_tmb_ar1_noint_ml", "gpa", "gpa ~ occasion + ar1(0 + occas | student)",
           note = "gpa_tmb_ar1_ml without its boundary (1 | student) term"),
  tmb_spec("gpa_tmb_diag_ml", "gpa", "gpa ~ occasion + (1 | student) + diag(0 + occas | student)",
           note = paste("the residual SD and the six diag SDs are confounded: only sd_k^2 + sigma^2 per occasion",
                        "is identified (the Hessian in the parameters is nearly singular, hessian_eigen_ratio,",
                        "its smallest eigenvalue over its largest, about 3e-10; pdHess is TRUE only numerically),",
                        "so compare total_variance_by_occasion, logLik and fixef, not sigma or the diag SDs.",
                        "The model is gpa_varident_ml's (meta$checks)")),
  tmb_spec("machines_tmb_cs_ml", "Machines", "score ~ Machine + cs(0 + Machine | Worker)"),
  tmb_spec("machines_tmb_cs_reml", "Machines", "score ~ Machine + cs(0 + Machine | Worker)", REML = TRUE),
  tmb_spec("machines_tmb_diag_reml", "Machines", "score ~ Machine + diag(0 + Machine | Worker)", REML = TRUE),
  tmb_spec("sleep_tmb_us_reml", "sleepstudy", "Reaction ~ Days + us(Days | Subject)", REML = TRUE,
           note = "the model of lmer(Reaction ~ Days + (Days | Subject)), REML; logLik as lmer's (meta$checks)"),
  tmb_spec("sleep_tmb_diag_ml", "sleepstudy", "Reaction ~ Days + diag(Days | Subject)",
           note = "the model of lmer(Reaction ~ Days + (Days || Subject), REML = FALSE); logLik as lmer's")
)
ids <- vapply(models, function(s) s$id, "")
stopifnot(!anyDuplicated(ids))

# nlminb's own tolerances as lme passes them on (lmeControl's ...), run to convergence
# (returnObject: at this tolerance nlminb often ends in "singular convergence (7)", no
# further progress possible, which lme would otherwise turn into an error)
tight_lme <- list(msMaxIter = 1000, msMaxEval = 5000, rel.tol = 1e-12, returnObject = TRUE)

# The call is built from names, so that the fit's call reads "data = gpa" rather than
# the data's values.
make_call <- function(s, tight = FALSE) {
  if (s$engine == "lme") {
    args <- list(fixed = str2lang(s$fixed), data = as.name(s$data), random = str2lang(s$random))
    if (!is.null(s$weights)) args$weights <- str2lang(s$weights)
    if (!is.null(s$correlation)) args$correlation <- str2lang(s$correlation)
    args$method <- s$method
    if (tight) args$control <- as.call(c(as.name("lmeControl"), tight_lme))
    as.call(c(as.name("lme"), args))
  } else {
    args <- list(formula = str2lang(s$formula), data = as.name(s$data))
    if (s$REML) args$REML <- TRUE
    as.call(c(as.name("glmmTMB"), args))
  }
}
call_text <- function(cl) paste(deparse(cl, width.cutoff = 500L), collapse = " ")

run_logged <- function(cl) {
  warns <- character()
  msgs <- character()
  t0 <- proc.time()[["elapsed"]]
  m <- withCallingHandlers(
    eval(cl, fit_env),
    warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(mm) { msgs <<- c(msgs, trimws(conditionMessage(mm))); invokeRestart("muffleMessage") }
  )
  list(model = m, warnings = unique(warns), messages = unique(msgs),
       seconds = proc.time()[["elapsed"]] - t0)
}

named <- function(x) lapply(as.list(x), unbox)
vec <- function(x) I(unname(as.numeric(x)))
close_to <- function(a, b, tol = 1e-10) max(abs(unname(a) - unname(b))) <= tol * max(1, abs(unname(b)))

# ---- nlme -------------------------------------------------------------------------
lme_group_name <- function(m) names(m$groups)[1]

lme_varcorr <- function(m) {
  rows <- list(grp = character(), var1 = character(), var2 = character(), vcov = numeric(), sdcor = numeric())
  add_row <- function(g, v1, v2, vcv, sdc) {
    rows$grp <<- c(rows$grp, g); rows$var1 <<- c(rows$var1, v1); rows$var2 <<- c(rows$var2, v2)
    rows$vcov <<- c(rows$vcov, vcv); rows$sdcor <<- c(rows$sdcor, sdc)
  }
  # reStruct lists the levels innermost first; rows here outermost first, as VarCorr prints them
  re <- m$modelStruct$reStruct
  for (g in rev(names(re))) {
    v <- pdMatrix(re[[g]]) * m$sigma^2
    sds <- sqrt(diag(v))
    nm <- rownames(v)
    for (i in seq_along(sds)) add_row(g, nm[i], NA, v[i, i], sds[i])
    if (length(sds) > 1) {
      lt <- which(lower.tri(v), arr.ind = TRUE)
      for (k in seq_len(nrow(lt))) {
        i <- lt[k, "row"]; j <- lt[k, "col"]
        add_row(g, nm[j], nm[i], v[i, j], v[i, j] / (sds[i] * sds[j]))
      }
    }
  }
  lapply(rows, function(x) I(unname(x)))
}

lme_varstruct <- function(m) {
  vs <- m$modelStruct$varStruct
  if (is.null(vs)) return(NULL)
  out <- list(class = unbox(class(vs)[1]), formula = unbox(paste(deparse(formula(vs)), collapse = " ")),
              coef = named(coef(vs, unconstrained = FALSE)),
              coef_unconstrained = named(setNames(coef(vs, unconstrained = TRUE),
                                                  names(coef(vs, unconstrained = FALSE)))))
  if (inherits(vs, "varIdent")) {
    lev <- attr(vs, "groupNames")  # the reference stratum first
    ratio <- c(1, coef(vs, unconstrained = FALSE))
    names(ratio)[1] <- lev[1]
    stopifnot(setequal(names(ratio), lev))
    out$reference_level <- unbox(lev[1])
    out$sd_ratio <- named(ratio[lev])
    out$sd_by_level <- named(m$sigma * ratio[lev])
  }
  out
}

lme_corstruct <- function(m, s) {
  cs <- m$modelStruct$corStruct
  if (is.null(cs)) return(NULL)
  list(requested = unbox(s$correlation), class = unbox(class(cs)[1]),
       formula = unbox(paste(deparse(formula(cs)), collapse = " ")),
       phi = unbox(unname(coef(cs, unconstrained = FALSE))),
       coef_name = unbox(names(coef(cs, unconstrained = FALSE))),
       coef_unconstrained = unbox(unname(coef(cs, unconstrained = TRUE))))
}

# Each group's correlation matrix, checked against phi^|t_i - t_j| at the covariate that
# nlme holds for the group (its time values, or positions 1..n_i for corAR1()); and the
# Pearson residuals whitened within each group in the data's row order
lme_serial <- function(m, d) {
  cs <- m$modelStruct$corStruct
  grp <- as.character(d[[lme_group_name(m)]])
  pearson <- unname(resid(m, type = "pearson"))
  if (is.null(cs)) return(list(normalized = pearson, corr_check = NA_real_))
  cm <- corMatrix(cs)
  covar <- attr(cs, "covariate")
  phi <- unname(coef(cs, unconstrained = FALSE))
  worst <- 0
  norm <- numeric(length(pearson))
  for (g in names(cm)) {
    idx <- which(grp == g)
    R <- as.matrix(cm[[g]])
    tt <- covar[[g]]
    worst <- max(worst, abs(R - phi^abs(outer(tt, tt, "-"))))
    norm[idx] <- backsolve(chol(R), pearson[idx], transpose = TRUE)
  }
  list(normalized = norm, corr_check = worst)
}

lme_checks <- function(m, s, d) {
  X <- model.matrix(as.formula(s$fixed), d)
  g <- as.character(d[[lme_group_name(m)]])
  re <- ranef(m)
  y <- d[[all.vars(str2lang(s$fixed))[1]]]
  f0 <- unname(fitted(m, level = 0))
  f1 <- unname(fitted(m, level = 1))
  stopifnot(identical(colnames(re), "(Intercept)"),  # every lme here has a random intercept only
            close_to(f0, drop(X %*% fixef(m))),
            close_to(f1, f0 + re[g, 1]),
            close_to(unname(resid(m)), y - f1),
            close_to(unname(resid(m, type = "pearson")), (y - f1) / attr(m$residuals, "std")))
  vs <- m$modelStruct$varStruct
  if (inherits(vs, "varIdent")) {
    ratio <- c(1, coef(vs, unconstrained = FALSE))
    names(ratio)[1] <- attr(vs, "groupNames")[1]
    strat <- as.character(d[[all.vars(getGroupsFormula(formula(vs)))[1]]])
    stopifnot(close_to(attr(m$residuals, "std"), m$sigma * ratio[strat]))
  } else if (inherits(vs, "varExp")) {
    cov <- d[[all.vars(getCovariateFormula(formula(vs)))[1]]]
    stopifnot(close_to(attr(m$residuals, "std"), m$sigma * exp(coef(vs, unconstrained = FALSE) * cov)))
  } else if (is.null(vs)) {
    stopifnot(close_to(attr(m$residuals, "std"), rep(m$sigma, nrow(d))))
  }
}

lme_tight <- function(s) {
  run <- tryCatch(run_logged(make_call(s, tight = TRUE)), error = function(e) e)
  if (inherits(run, "error")) return(list(fields = list(error = unbox(conditionMessage(run))), seconds = NA))
  m <- run$model
  res <- list(control = unbox(call_text(as.call(c(as.name("lmeControl"), tight_lme)))),
              logLik = unbox(as.numeric(logLik(m))), fixef = vec(fixef(m)), sigma = unbox(m$sigma),
              varcorr_sdcor = lme_varcorr(m)$sdcor, warnings = I(run$warnings))
  vs <- m$modelStruct$varStruct
  if (!is.null(vs)) res$varStruct_coef <- named(coef(vs, unconstrained = FALSE))
  if (!is.null(m$modelStruct$corStruct)) res$phi <- unbox(unname(coef(m$modelStruct$corStruct, unconstrained = FALSE)))
  list(fields = res, seconds = run$seconds)
}

lme_fields <- function(s, run) {
  m <- run$model
  d <- fitting_data[[s$data]]
  stopifnot(nobs(m) == nrow(d))  # no rows dropped: the vectors below are the data's rows
  lme_checks(m, s, d)
  serial <- lme_serial(m, d)
  ll <- logLik(m)
  V <- as.matrix(vcov(m))
  gname <- lme_group_name(m)
  re <- ranef(m)
  re_tab <- list(grpvar = I(rep(gname, nrow(re) * ncol(re))),
                 term = I(rep(colnames(re), each = nrow(re))),
                 grp = I(rep(rownames(re), ncol(re))), condval = I(unname(unlist(re))))
  sorted <- !is.unsorted(as.integer(d[[gname]]))
  nlme_norm <- unname(resid(m, type = "normalized"))
  if (sorted) stopifnot(close_to(nlme_norm, serial$normalized))
  apv <- m$apVar
  list(
    id = unbox(s$id), engine = unbox("lme"), dataset = unbox(s$data),
    fixed = unbox(s$fixed), random = unbox(s$random),
    weights = unbox(if (is.null(s$weights)) NA else s$weights),
    correlation = unbox(if (is.null(s$correlation)) NA else s$correlation),
    call = unbox(call_text(make_call(s))), method = unbox(m$method),
    note = unbox(if (is.null(s$note)) NA else s$note),
    logLik = unbox(as.numeric(ll)), df = unbox(attr(ll, "df")),
    AIC = unbox(AIC(m)), BIC = unbox(BIC(m)), nobs = unbox(nobs(m)),
    ngrps = named(m$dims$ngrps[seq_len(m$dims$Q)]),
    fixef_names = I(names(fixef(m))), fixef = named(fixef(m)), fixef_se = named(sqrt(diag(V))),
    fixef_vcov = I(unname(V)), fixef_df = named(m$fixDF$X),
    sigma = unbox(m$sigma),
    sigma_note = unbox("fit$sigma: the residual SD of the variance function's reference (weight 1)"),
    varcorr = lme_varcorr(m),
    varStruct = lme_varstruct(m),
    corStruct = lme_corstruct(m, s),
    corr_matrix_check = unbox(serial$corr_check),
    rows_sorted_by_group = unbox(sorted),
    fitted = vec(fitted(m, level = 1)),
    fitted_fixed = vec(fitted(m, level = 0)),
    resid_response = vec(resid(m, type = "response")),
    resid_pearson = vec(resid(m, type = "pearson")),
    resid_normalized = vec(nlme_norm),
    # written only where it differs from resid_normalized (rows not sorted by group)
    resid_normalized_by_group = if (sorted) NULL else vec(serial$normalized),
    ranef = re_tab,
    optimizer = unbox("nlminb, lmeControl() defaults"),
    numIter = unbox(if (is.null(m$numIter)) NA else m$numIter),
    apVar_ok = unbox(is.matrix(apv)),
    apVar_message = unbox(if (is.matrix(apv)) NA else as.character(apv)),
    converged = unbox(length(run$warnings) == 0 && is.matrix(apv)),
    warnings = I(run$warnings), messages = I(run$messages),
    summary_text = I(capture.output(print(summary(m))))
  )
}

# ---- glmmTMB ----------------------------------------------------------------------
# One entry per covariance term: its structure, SDs, correlation matrix and raw theta,
# with glmmTMB's map from theta checked (glmmTMB.cpp): log SDs first; ar1 one log SD and
# rho = th / sqrt(1 + th^2); cs n log SDs and rho = plogis(th) * (1 + a) - a with
# a = 1 / (n - 1); us n log SDs and the scaled Cholesky factor of the correlation
tmb_structures <- function(m) {
  rs <- m$modelInfo$reStruc$condReStruc
  vc <- VarCorr(m)$cond
  theta <- unname(getME(m, "theta"))
  stopifnot(length(rs) == length(vc), sum(vapply(rs, function(r) r$blockNumTheta, 0)) == length(theta))
  at <- 0
  out <- list()
  for (k in seq_along(rs)) {
    r <- rs[[k]]
    th <- theta[at + seq_len(r$blockNumTheta)]
    at <- at + r$blockNumTheta
    v <- vc[[k]]
    sds <- attr(v, "stddev")
    cr <- attr(v, "correlation")
    n <- length(sds)
    struct <- names(r$blockCode)
    entry <- list(term = unbox(names(rs)[k]), group = unbox(names(vc)[k]), structure = unbox(struct),
                  columns = I(names(sds)), sd = named(sds), correlation = I(unname(cr)), theta = I(th))
    if (struct == "ar1") {
      rho <- th[2] / sqrt(1 + th[2]^2)
      stopifnot(close_to(sds, rep(exp(th[1]), n)), close_to(cr, rho^abs(outer(1:n, 1:n, "-"))))
      entry$rho <- unbox(rho)
    } else if (struct == "cs") {
      a <- 1 / (n - 1)
      rho <- plogis(th[n + 1]) * (1 + a) - a
      stopifnot(close_to(sds, exp(th[1:n])), close_to(cr[lower.tri(cr)], rep(rho, n * (n - 1) / 2)))
      entry$rho <- unbox(rho)
    } else if (struct == "diag") {
      stopifnot(close_to(sds, exp(th)), close_to(cr, diag(n)))
    } else if (struct == "us") {
      stopifnot(close_to(sds, exp(th[1:n])))
      if (n == 2) stopifnot(close_to(cr[2, 1], th[3] / sqrt(1 + th[3]^2)))
    }
    out[[k]] <- entry
  }
  out
}

# glmmTMB's vcov(m)$cond is sdreport's: by ML the inverse of the joint Hessian in the fixed
# effects and the variance parameters, by REML (the fixed effects integrated out with the random
# ones) their joint covariance with the variance parameters' uncertainty propagated. lme4's and
# nlme's SEs are conditional on the variance parameters: sigma^2 (X' V^-1 X)^-1, the inverse of
# the fixed effects' own block of the precision, which is this.
tmb_conditional_se <- function(m, beta_names) {
  env <- m$obj$env
  if (!m$modelInfo$REML) {
    H <- solve(m$sdr$cov.fixed)
    idx <- which(names(m$fit$par) == "beta")
    se <- sqrt(diag(solve(H[idx, idx, drop = FALSE])))
  } else {
    par <- env$last.par.best
    Hr <- as.matrix(env$spHess(par, random = TRUE))
    idx <- which(names(par)[env$random] == "beta")
    se <- sqrt(diag(solve(Hr))[idx])
  }
  names(se) <- beta_names
  se
}

tmb_fields <- function(s, run) {
  m <- run$model
  d <- fitting_data[[s$data]]
  stopifnot(nobs(m) == nrow(d))  # the vectors below are the data's rows
  beta <- fixef(m)$cond
  V <- as.matrix(vcov(m)$cond)
  ll <- logLik(m)
  re <- as.data.frame(ranef(m, condVar = TRUE))
  re <- re[re$component == "cond", ]
  grad <- m$obj$gr(m$fit$par)
  out <- list(
    id = unbox(s$id), engine = unbox("glmmTMB"), dataset = unbox(s$data),
    formula = unbox(s$formula), call = unbox(call_text(getCall(m))),
    method = unbox(if (m$modelInfo$REML) "REML" else "ML"), REML = unbox(m$modelInfo$REML),
    note = unbox(if (is.null(s$note)) NA else s$note),
    logLik = unbox(as.numeric(ll)), df = unbox(attr(ll, "df")),
    AIC = unbox(AIC(m)), BIC = unbox(BIC(m)), nobs = unbox(nobs(m)),
    ngrps = named(summary(m)$ngrps$cond),
    fixef_names = I(names(beta)), fixef = named(beta), fixef_se = named(sqrt(diag(V))),
    fixef_se_conditional = named(tmb_conditional_se(m, names(beta))),
    fixef_vcov = I(unname(V)),
    sigma = unbox(sigma(m)),
    varcorr = tmb_varcorr(m),
    structures = tmb_structures(m),
    fitted = vec(fitted(m)),
    fitted_fixed = vec(predict(m, re.form = NA)),
    resid_response = vec(residuals(m, type = "response")),
    resid_pearson = vec(residuals(m, type = "pearson")),
    ranef = list(grpvar = I(as.character(re$grpvar)), term = I(as.character(re$term)),
                 grp = I(as.character(re$grp)), condval = I(re$condval), condsd = I(re$condsd)),
    tmb_par_names = I(names(m$fit$par)), tmb_par = I(unname(m$fit$par)),
    optimizer = unbox("nlminb"), optimizer_message = unbox(m$fit$message),
    max_abs_gradient = unbox(max(abs(grad))),
    pd_hessian = unbox(isTRUE(m$sdr$pdHess)),
    converged = unbox(m$fit$convergence == 0 && isTRUE(m$sdr$pdHess) && length(run$warnings) == 0),
    warnings = I(run$warnings), messages = I(run$messages),
    summary_text = I(capture.output(print(summary(m))))
  )
  if (s$id == "gpa_tmb_diag_ml") {
    vcl <- VarCorr(m)$cond
    sd_int <- attr(vcl[["student"]], "stddev")[["(Intercept)"]]
    sd_occ <- attr(vcl[["student.1"]], "stddev")
    within <- sd_occ^2 + sigma(m)^2
    names(within) <- levels(d$occas)
    out$within_variance_by_occasion <- named(within)
    out$total_variance_by_occasion <- named(within + sd_int^2)
    H <- solve(m$sdr$cov.fixed)
    ev <- eigen(H, symmetric = TRUE, only.values = TRUE)$values
    out$hessian_eigen_ratio <- unbox(min(ev) / max(ev))
  }
  out
}

fits <- list()
fitted_models <- list()
timing <- list()
for (s in models) {
  run <- run_logged(make_call(s))
  fitted_models[[s$id]] <- run$model
  if (s$engine == "lme") {
    f <- lme_fields(s, run)
    tight <- lme_tight(s)
    f$tight_fit <- tight$fields
    f$tight_logLik_gain <- unbox(if (is.null(tight$fields$logLik)) NA else tight$fields$logLik - f$logLik)
    secs <- c(run$seconds, tight$seconds)
  } else {
    f <- tmb_fields(s, run)
    secs <- run$seconds
  }
  f$seconds <- I(secs)
  fits[[s$id]] <- f
  timing[[s$id]] <- secs
}

# ---- checks across fits -----------------------------------------------------------
fm <- fitted_models
# gaps: the correlation nlme used for a student with a gap is phi^|t_i - t_j|
gap_fit <- fm[["gpa_gaps_ar1_reml"]]
gap_cs <- gap_fit$modelStruct$corStruct
gap_student <- names(which(table(gaps$student) < 6))[1]
gap_times <- gaps$occasion[gaps$student == gap_student]
gap_phi <- unname(coef(gap_cs, unconstrained = FALSE))
# shuffled rows: the same fit, its vectors permuted
sh <- fm[["gpa_gaps_shuffled_ar1_reml"]]
shuffle_check <- list(
  logLik_difference = unbox(as.numeric(logLik(sh)) - as.numeric(logLik(gap_fit))),
  phi_difference = unbox(unname(coef(sh$modelStruct$corStruct, unconstrained = FALSE)) - gap_phi),
  max_abs_fixef_difference = unbox(max(abs(fixef(sh) - fixef(gap_fit)))),
  sigma_difference = unbox(sh$sigma - gap_fit$sigma),
  max_abs_fitted_difference = unbox(max(abs(unname(fitted(sh)) - unname(fitted(gap_fit))[perm]))),
  max_abs_pearson_difference = unbox(max(abs(unname(resid(sh, type = "pearson")) -
                                             unname(resid(gap_fit, type = "pearson"))[perm]))),
  max_abs_normalized_difference = unbox(max(abs(unname(resid(sh, type = "normalized")) -
                                                unname(resid(gap_fit, type = "normalized"))[perm]))),
  max_abs_normalized_by_group_vs_nlme = unbox(max(abs(fits[["gpa_gaps_shuffled_ar1_reml"]]$resid_normalized_by_group -
                                                      fits[["gpa_gaps_shuffled_ar1_reml"]]$resid_normalized))),
  # the per-group whitening is not a permutation either: each group's Cholesky factor
  # follows the group's row order
  max_abs_normalized_by_group_difference = unbox(max(abs(
    fits[["gpa_gaps_shuffled_ar1_reml"]]$resid_normalized_by_group - fits[["gpa_gaps_ar1_reml"]]$resid_normalized[perm])))
)
# nlme's normalized residuals on rows not sorted by group: the whitening of the
# group-sorted data applied to the residuals in the data's order
sh_pearson <- unname(resid(sh, type = "pearson"))
sh_cm <- corMatrix(sh$modelStruct$corStruct)
sh_sorted_groups <- as.character(shuffled$student)[order(shuffled$student)]
sh_as_nlme <- numeric(length(sh_pearson))
for (g in names(sh_cm)) {
  P <- which(sh_sorted_groups == g)
  sh_as_nlme[P] <- backsolve(chol(as.matrix(sh_cm[[g]])), sh_pearson[P], transpose = TRUE)
}
shuffle_check$max_abs_nlme_normalized_vs_sorted_position_whitening <-
  unbox(max(abs(sh_as_nlme - unname(resid(sh, type = "normalized")))))
stopifnot(abs(shuffle_check$logLik_difference) < 1e-6, shuffle_check$max_abs_fitted_difference < 1e-6,
          shuffle_check$max_abs_nlme_normalized_vs_sorted_position_whitening < 1e-10)

gpa_lmer <- lmer(gpa ~ occasion + (1 | student), data = gpa)
sleep_us <- lmer(Reaction ~ Days + (Days | Subject), data = fitting_data[["sleepstudy"]])
sleep_diag <- lmer(Reaction ~ Days + (Days || Subject), data = fitting_data[["sleepstudy"]], REML = FALSE)
ll <- function(id) as.numeric(logLik(fm[[id]]))
checks <- list(
  gaps = list(
    student = unbox(gap_student), occasions = I(gap_times), phi = unbox(gap_phi),
    corStruct_class = unbox(class(gap_cs)[1]),
    corr_matrix = I(unname(as.matrix(corMatrix(gap_cs)[[gap_student]]))),
    max_abs_difference_from_phi_power_lag = unbox(max(abs(as.matrix(corMatrix(gap_cs)[[gap_student]]) -
                                                          gap_phi^abs(outer(gap_times, gap_times, "-")))))),
  shuffled = shuffle_check,
  gpa_homo_reml_vs_lmer_logLik = unbox(ll("gpa_homo_reml") - as.numeric(logLik(gpa_lmer))),
  gpa_tmb_diag_ml_vs_gpa_varident_ml_logLik = unbox(ll("gpa_tmb_diag_ml") - ll("gpa_varident_ml")),
  gpa_tmb_diag_ml_total_variance_vs_varident_ml = unbox(max(abs(
    unlist(fits[["gpa_tmb_diag_ml"]]$total_variance_by_occasion) -
      (fits[["gpa_varident_ml"]]$varcorr$vcov[1] +
         unlist(fits[["gpa_varident_ml"]]$varStruct$sd_by_level)^2)[levels(gpa$occas)]))),
  gpa_tmb_ar1_ml_vs_noint_logLik = unbox(ll("gpa_tmb_ar1_ml") - ll("gpa_tmb_ar1_noint_ml")),
  sleep_tmb_us_reml_vs_lmer_logLik = unbox(ll("sleep_tmb_us_reml") - as.numeric(logLik(sleep_us))),
  sleep_tmb_diag_ml_vs_lmer_logLik = unbox(ll("sleep_tmb_diag_ml") - as.numeric(logLik(sleep_diag)))
)

ar1_init_src <- paste(deparse(nlme:::Initialize.corAR1), collapse = "\n")
stopifnot(grepl("diff)) != 1", ar1_init_src, fixed = TRUE), grepl("corARMA", ar1_init_src, fixed = TRUE))

meta <- list(
  script = unbox("tests/r/structures_models.R"),
  R = unbox(R.version.string),
  nlme = unbox(as.character(packageVersion("nlme"))),
  lme4 = unbox(as.character(packageVersion("lme4"))),
  glmmTMB = unbox(as.character(packageVersion("glmmTMB"))),
  TMB = unbox(as.character(packageVersion("TMB"))),
  Matrix = unbox(as.character(packageVersion("Matrix"))),
  jsonlite = unbox(as.character(packageVersion("jsonlite"))),
  lmeControl_defaults = lapply(lmeControl()[c("maxIter", "msMaxIter", "msMaxEval", "msTol", "niterEM", "opt")], unbox),
  tight_lmeControl = lapply(tight_lme, unbox),
  converged = unbox(paste("lme: no warning and fit$apVar a matrix (the approximate covariance of the variance",
                          "parameters positive definite; lme stops with an error when nlminb does not converge);",
                          "tight_logLik_gain is the logLik a refit with nlminb run to tight tolerances gains (its",
                          "warnings are nlminb's \"singular convergence (7)\" where it could make no further",
                          "progress).",
                          "glmmTMB: nlminb convergence 0, a positive definite Hessian and no warning")),
  fields = list(
    vectors = unbox(paste("fitted (level 1, conditional on the random effects), fitted_fixed (level 0),",
                          "resid_response (y - fitted), resid_pearson (resid_response / the row's residual SD),",
                          "resid_normalized (nlme's; see notes$nlme_row_order), resid_normalized_by_group",
                          "(each group's Pearson residuals times the inverse transposed Cholesky factor of its",
                          "correlation matrix, the group's rows taken in the data's order; only where the rows",
                          "are not sorted by group, elsewhere it is resid_normalized): all full length, in the",
                          "data's row order. The residual SD of each row (sigma times the variance function) is",
                          "resid_response / resid_pearson")),
    varStruct = unbox(paste("coef(fit$modelStruct$varStruct, unconstrained = FALSE): for varIdent the SD ratios",
                            "to the reference stratum (sd_ratio adds the reference level's 1, in groupNames order;",
                            "sd_by_level = sigma * sd_ratio), for varExp expon (sd = sigma * exp(expon * covariate))")),
    corStruct = unbox(paste("phi = coef(fit$modelStruct$corStruct, unconstrained = FALSE); class is the class",
                            "after Initialize (corAR1 becomes corARMA with gaps); corr_matrix_check is the largest",
                            "|corMatrix - phi^|t_i - t_j|| over groups, at the covariate nlme holds per group")),
    varcorr = unbox(paste("rows grp, var1, var2, vcov, sdcor: variances (SDs) then covariances (correlations),",
                          "for glmmTMB as VarCorr names the groups (a second term on the same factor is",
                          "student.1); the residual is sigma")),
    structures = unbox(paste("glmmTMB, one entry per covariance term: the SD of each column, the correlation",
                             "matrix, the raw theta and, for ar1 and cs, rho")),
    fixef_se = unbox("sqrt(diag(vcov(fit))) (nlme: fit$varFix; glmmTMB: vcov(fit)$cond)"),
    ranef = unbox("nlme: ranef(fit) as a table (no condsd); glmmTMB: as.data.frame(ranef(fit, condVar = TRUE))")
  ),
  notes = list(
    nlme_gaps = unbox(paste(
      "Initialize.corAR1 (nlme 3.1.162) checks the covariate within each group: duplicated values are an error;",
      "if any within-group difference is not 1 (a gap, unequal steps, or rows not in time order) it sets",
      "p = 1, q = 0, changes the class to corARMA and initializes that. corARMA's correlation at lag",
      "k = |t_i - t_j| (the covariate's difference, not the rows' distance) is the ARMA(1, 0)",
      "autocorrelation phi^k, so a gap of one occasion gives phi^2 between its neighbours (checks$gaps).",
      "Conversely Initialize.corARMA with p = 1, q = 0 and unit steps turns back into corAR1. The estimate",
      "is then named Phi1, not Phi. corCAR1 takes phi^|t_i - t_j| for real-valued t directly.")),
    nlme_row_order = unbox(paste(
      "lme sorts the data by the grouping factor (do.call(order, grps), level order, stable: rows keep the",
      "data's order within a group), fits, and puts fitted and residuals back into the data's row order",
      "(revOrder); the names of fitted() and resid() are the group labels, not row names. The correlation",
      "structures use the within-group order only through their covariate, so with a time covariate",
      "logLik and estimates do not depend on row order (checks$shuffled; corAR1() without a covariate uses",
      "positions). The varIdent reference stratum is the first stratum in the group-sorted data",
      "(attr(varStruct, 'groupNames')[1]). resid(type = 'normalized') applies the corStruct's whitening,",
      "which is laid out for the group-sorted rows, to the residuals in the data's order (recalc on the",
      "reordered vector): when the rows are not sorted by the grouping factor's levels the result is not",
      "each group's whitened residuals (checks$shuffled: it equals whitening by sorted positions applied to",
      "data-order values). resid_normalized_by_group is the per-group whitening. Even per group,",
      "normalized residuals depend on the order of a group's rows (the Cholesky factor follows it), so",
      "those of shuffled rows are not a permutation of the sorted ones",
      "(checks$shuffled$max_abs_normalized_by_group_difference). nlme's and the per-group ones agree on",
      "data sorted by group (rows_sorted_by_group; the script stops otherwise). Ovary's and BodyWeight's",
      "rows are not in the level order of Mare and Rat (ordered factors, levels sorted by response), so nlme's",
      "resid_normalized for ovary_ar1_reml and the bodyweight fits is not the per-group one either.")),
    glmmTMB_ar1 = unbox(paste(
      "ar1(0 + occas | student): one SD for all columns (theta[1] its log) and rho = theta[2] / sqrt(1 +",
      "theta[2]^2), correlation rho^|i - j| between the factor's columns i, j (levels taken as unit-spaced",
      "times); a random effect, so the residual sigma is white noise on top of it.")),
    glmmTMB_cs = unbox(paste(
      "cs(0 + Machine | Worker) is heterogeneous compound symmetry: n + 1 parameters, n log SDs (one per",
      "column) and one common correlation rho = plogis(theta[n + 1]) * (1 + a) - a, a = 1 / (n - 1), so",
      "rho lies in (-1/(n - 1), 1) (glmmTMB.cpp, cs_covstruct; checked on each fit). diag: n log SDs, no",
      "correlation. us: n log SDs and the scaled Cholesky factor of the correlation (for n = 2 rho =",
      "theta[3] / sqrt(1 + theta[3]^2)).")),
    glmmTMB_REML = unbox(paste(
      "REML = TRUE integrates the fixed effects out with the random ones (Laplace, exact for a Gaussian",
      "model): the fixed effects are not in tmb_par, and fixef and vcov come from sdreport; logLik is then",
      "the REML criterion, equal to lmer's (checks$sleep_tmb_us_reml_vs_lmer_logLik)."))
  ),
  checks = checks
)

# the row vectors and ranef tables only where the tests read them (the file stays small)
vector_fits <- c("gpa_varident_ar1_reml", "gpa_gaps_ar1_reml", "gpa_gaps_shuffled_ar1_reml",
                 "orthodont_varexp_reml", "bodyweight_car1_reml")
meta$vectors_kept_for <- I(vector_fits)
for (id in setdiff(names(fits), vector_fits)) {
  for (field in c("fitted", "fitted_fixed", "resid_response", "resid_pearson", "resid_normalized",
                  "resid_normalized_by_group", "ranef")) fits[[id]][[field]] <- NULL
}
out <- list(meta = meta, datasets = data_meta, models = unname(fits))
writeLines(toJSON(out, digits = NA, na = "null", null = "null", pretty = TRUE),
           file.path(out_dir, "structures_models.json"))
cat(length(fits), "models,", length(data_meta), "datasets written to", out_dir, "\n")
for (f in fits) {
  par <- if (f$engine == "lme") {
    paste(c(if (!is.null(f$corStruct)) sprintf("phi %.6f", f$corStruct$phi),
            if (!is.null(f$varStruct)) paste(names(f$varStruct$coef), sprintf("%.4f", unlist(f$varStruct$coef)))),
          collapse = " ")
  } else {
    paste(vapply(f$structures, function(e)
      paste0(e$structure, if (!is.null(e$rho)) sprintf(" rho %.4f", e$rho) else ""), ""), collapse = ", ")
  }
  gain <- if (is.null(f$tight_logLik_gain)) NA else f$tight_logLik_gain
  cat(sprintf("%-30s %-7s %-4s logLik %11.5f tight %+.1e conv %-5s %5.2fs %s %s\n", f$id, f$engine, f$method,
              f$logLik, gain, f$converged, sum(timing[[f$id]]), par, paste(f$warnings, collapse = " | ")))
}
cat(sprintf("total %.1f s\n", proc.time()[["elapsed"]] - script_t0))
