# Reference fits for the GLMM tests: glmer, glmer.nb and glmmTMB fits (binomial with
# trials, proportions with weights, probit and cloglog links, Poisson with offsets,
# crossed random effects, a random slope, adaptive Gauss-Hermite quadrature, negative
# binomial, Gamma) and lmer fits with prior weights and offsets, on data from R's own
# packages and on ../shared's speed_dating.
#
# Rerun from the repository root (about 30 s):
#
#     Rscript tests/r/glmm_models.R
#
# ../shared is found as $HIERBAYES_SHARED, else ../shared. The script writes
# tests/data/r/<dataset>.csv.gz (only the columns the models use; a file that
# tests/r/lmer_models.R also writes must come out byte for byte the same, else the script
# stops) and tests/data/r/glmm_models.json (every fit, plus the datasets' column types
# and factor levels). Each dataset is written, read back, and fitted as read back, so R
# and Python fit the same numbers (tests/r/common.R). speed_dating is read from
# ../shared, not copied; its entry names the file and the factor levels R gave it.
#
# The committed files were made with R 4.2.2, lme4 1.1.31, Matrix 1.5.3, glmmTMB 1.1.5,
# TMB 1.9.2, MASS 7.3.58.2, mlmRev 1.0.8, jsonlite 1.8.4 (Debian's r-cran-* packages,
# reference BLAS); the versions are also recorded in the JSON's "meta".
#
# Every glmer fit is recorded twice: as glmer gives it with its default settings
# (bobyqa, then Nelder_Mead, both with lme4's default stopping rules, and PIRLS stopped at
# tolPwrss = 1e-7), and under "converged_fit" with both stages run by nloptwrap to tight
# tolerances and PIRLS to tolPwrss = 1e-12. The default PIRLS stop leaves glmer's logLik
# 2.8e-4 (3e-6 relative) below the Laplace approximation on cbpp; the converged fit is
# the Laplace (or AGQ) optimum, and its logLik the approximation at it.

suppressPackageStartupMessages({
  library(lme4)
  library(MASS)
  library(mlmRev)
  library(glmmTMB)
  library(jsonlite)
})

out_dir <- file.path("tests", "data", "r")
if (!dir.exists(file.path("tests", "r"))) stop("Run this from the repository root.")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
source(file.path("tests", "r", "common.R"))  # plain, column_info, read_back, exact_text, write_dataset, tmb_varcorr
shared <- Sys.getenv("HIERBAYES_SHARED", file.path("..", "shared"))

# ---- datasets (deterministic changes only) ----------------------------------------
datasets <- list()
sources <- list()
add <- function(name, source, d) {
  datasets[[name]] <<- d
  sources[[name]] <<- source
}

add("cbpp", "lme4::cbpp", plain(lme4::cbpp, c("herd", "incidence", "size", "period")))
add("Insurance", "MASS::Insurance (Group and Age are ordered factors)",
    plain(MASS::Insurance, c("District", "Group", "Age", "Holders", "Claims")))
add("VerbAgg", "lme4::VerbAgg", plain(lme4::VerbAgg, c("r2", "Anger", "Gender", "btype", "situ", "id", "item")))
contra <- plain(mlmRev::Contraception, c("use", "age", "urban", "livch", "district"))
# age in decades: with age in years, I(age^2) makes glmer's Hessian badly scaled and the
# random-slope fit stops short (max|grad| 0.003, "very large eigenvalue")
contra$age10 <- contra$age / 10
add("Contraception", "mlmRev::Contraception, plus age10 = age / 10", contra)
grouse <- plain(lme4::grouseticks, c("TICKS", "YEAR", "HEIGHT", "LOCATION"))
# HEIGHT (403 to 533 m) makes glmer.nb's fits "nearly unidentifiable" (large eigenvalue)
grouse$HEIGHT_c <- (grouse$HEIGHT - 450) / 100
add("grouseticks", "lme4::grouseticks, plus HEIGHT_c = (HEIGHT - 450) / 100", grouse)
sleep <- plain(lme4::sleepstudy, c("Reaction", "Days", "Subject"))
add("sleepstudy", "lme4::sleepstudy", sleep)
sleep_w <- sleep
sleep_w$w <- 1 + (sleep_w$Days %% 3)
add("sleepstudy_weights", "lme4::sleepstudy, plus prior weights w = 1 + (Days %% 3)", sleep_w)

data_meta <- list()
fitting_data <- list()
for (name in names(datasets)) {
  written <- write_dataset(datasets[[name]], name, sources[[name]], out_dir, keep_existing = TRUE)
  fitting_data[[name]] <- written$data
  data_meta[[name]] <- written$meta
}

# speed_dating stays in ../shared; R's factors as glmer saw them (levels sorted, iid's
# numerically) are described so that Python builds the same ones
sd_cols <- c("decision", "sex", "samerace", "attractive_sc", "sincere_sc", "intelligent_sc", "iid")
sd_raw <- read.csv(file.path(shared, "data", "speed_dating.csv"))[, sd_cols]
for (col in c("decision", "sex", "samerace", "iid")) sd_raw[[col]] <- factor(sd_raw[[col]])
fitting_data[["speed_dating"]] <- sd_raw
data_meta[["speed_dating"]] <- list(
  file = unbox("data/speed_dating.csv"), shared = unbox(TRUE),
  source = unbox("../shared/data/speed_dating.csv read with read.csv; decision, sex, samerace and iid made factors"),
  nrow = unbox(nrow(sd_raw)), columns = lapply(sd_raw, column_info))

fit_env <- new.env()
for (name in names(fitting_data)) assign(name, fitting_data[[name]], envir = fit_env)

# ---- models ---------------------------------------------------------------------
spec <- function(id, engine, data, formula, family = NULL, nAGQ = 1L, weights = NULL,
                 offset = NULL, REML = NULL, note = NULL) {
  list(id = id, engine = engine, data = data, formula = formula, family = family, nAGQ = nAGQ,
       weights = weights, offset = offset, REML = REML, note = note)
}
cbind_f <- "cbind(incidence, size - incidence) ~ period + (1 | herd)"
ins_f <- "Claims ~ Age + offset(log(Holders)) + (1 | District:Group)"
contra_slope <- "use ~ age10 + I(age10^2) + urban + livch + (urban | district)"
grouse_f <- "TICKS ~ YEAR + HEIGHT_c + (1 | LOCATION)"
sd_f <- "decision ~ sex + samerace + attractive_sc + sincere_sc + intelligent_sc + (1 | iid)"
offset_arg_note <- paste("offset given as the offset= argument: lme4's predict() with newdata leaves it out",
                         "(an offset() term in the formula is kept), so predict_newdata has no offset")
models <- list(
  spec("cbpp_cbind", "glmer", "cbpp", cbind_f, "binomial"),
  spec("cbpp_prop_weights", "glmer", "cbpp", "incidence / size ~ period + (1 | herd)", "binomial", weights = "size",
       note = "the same model as cbpp_cbind, as a proportion with the trials as prior weights"),
  spec("cbpp_probit", "glmer", "cbpp", cbind_f, 'binomial(link = "probit")'),
  spec("cbpp_cloglog", "glmer", "cbpp", cbind_f, 'binomial(link = "cloglog")'),
  spec("cbpp_agq10", "glmer", "cbpp", cbind_f, "binomial", nAGQ = 10L),
  spec("insurance_offset", "glmer", "Insurance", ins_f, "poisson"),
  spec("insurance_offset_arg", "glmer", "Insurance", "Claims ~ Age + (1 | District:Group)", "poisson",
       offset = "log(Holders)", note = paste("the same model as insurance_offset;", offset_arg_note)),
  spec("verbagg_crossed", "glmer", "VerbAgg", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
       "binomial"),
  spec("contraception_slope", "glmer", "Contraception", contra_slope, "binomial"),
  spec("contraception_agq10", "glmer", "Contraception", "use ~ age + urban + (1 | district)", "binomial",
       nAGQ = 10L),
  spec("contraception_laplace", "glmer", "Contraception", "use ~ age + urban + (1 | district)", "binomial",
       note = "contraception_agq10 with the Laplace approximation (nAGQ = 1)"),
  spec("grouseticks_nb", "glmer.nb", "grouseticks", grouse_f),
  spec("grouseticks_nb_tmb", "glmmTMB", "grouseticks", grouse_f, "nbinom2",
       note = "grouseticks_nb by glmmTMB: sigma is the NB2 dispersion theta (variance mu + mu^2 / theta)"),
  spec("sleep_gamma", "glmer", "sleepstudy", "Reaction ~ Days + (1 | Subject)", 'Gamma(link = "log")',
       note = "see meta$gamma: glmer's objective and sigma for a Gamma family"),
  spec("sleep_gamma_tmb", "glmmTMB", "sleepstudy", "Reaction ~ Days + (1 | Subject)", 'Gamma(link = "log")',
       note = "sleep_gamma by glmmTMB: sigma = 1 / sqrt(shape), the coefficient of variation"),
  spec("speed_dating", "glmer", "speed_dating", sd_f, "binomial",
       note = "the fit of ../shared/refs/lme4.json's speed_dating, with this file's fields"),
  spec("cbpp_cbind_tmb", "glmmTMB", "cbpp", cbind_f, "binomial",
       note = "cbpp_cbind by glmmTMB: logit is the canonical link, so its Laplace approximation is glmer's"),
  spec("cbpp_probit_tmb", "glmmTMB", "cbpp", cbind_f, 'binomial(link = "probit")',
       note = paste("cbpp_probit by glmmTMB: for a non-canonical link TMB's Laplace uses the observed",
                    "Hessian in u, glmer's PIRLS the expected (Fisher) one, so the two differ")),
  spec("sleep_weights_reml", "lmer", "sleepstudy_weights", "Reaction ~ Days + (Days | Subject)",
       weights = "w", REML = TRUE),
  spec("sleep_weights_ml", "lmer", "sleepstudy_weights", "Reaction ~ Days + (Days | Subject)",
       weights = "w", REML = FALSE),
  spec("sleep_offset", "lmer", "sleepstudy", "Reaction ~ Days + offset(Days) + (Days | Subject)", REML = TRUE),
  spec("sleep_offset_arg", "lmer", "sleepstudy", "Reaction ~ Days + (Days | Subject)", offset = "Days",
       REML = TRUE, note = paste("the same model as sleep_offset;", offset_arg_note))
)
ids <- vapply(models, function(s) s$id, "")
stopifnot(!anyDuplicated(ids))

tight_opt <- list(xtol_rel = 1e-12, ftol_abs = 1e-14, xtol_abs = 1e-12, maxeval = 1e6)
# glmer's PIRLS stops at a relative change of 1e-7 in the penalized deviance (tolPwrss),
# which leaves the conditional modes short of the mode and, on cbpp, the Laplace logLik
# 2.8e-4 below its value at the same parameters with the modes converged (glmmTMB's)
tight_glmer <- glmerControl(optimizer = "nloptwrap", optCtrl = tight_opt, tolPwrss = 1e-12)

# The call is built from names, so that the fit's call, and the summary printed from it,
# read "data = cbpp, weights = size" rather than the data's values.
make_call <- function(s, tight = FALSE) {
  fn <- as.name(s$engine)
  args <- list(formula = str2lang(s$formula), data = as.name(s$data))
  if (!is.null(s$family)) args$family <- str2lang(s$family)
  if (s$engine == "glmer" && s$nAGQ != 1L) args$nAGQ <- s$nAGQ
  if (!is.null(s$weights)) args$weights <- as.name(s$weights)
  if (!is.null(s$offset)) args$offset <- str2lang(s$offset)
  if (!is.null(s$REML)) args$REML <- s$REML
  if (tight) {
    if (s$engine == "lmer") {
      args$control <- lmerControl(optCtrl = tight_opt)
    } else {
      args$control <- tight_glmer
    }
  }
  as.call(c(fn, args))
}

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

na_or <- function(x) ifelse(is.na(x), NA, x)
named <- function(x) lapply(as.list(x), unbox)
row_numbers <- function(x) as.integer(names(x))

quantiles <- function(r) {
  q <- quantile(r, na.rm = TRUE)
  named(setNames(unname(q), c("Min", "1Q", "Median", "3Q", "Max")))
}

ranef_table <- function(re) {
  re <- as.data.frame(re)
  list(grpvar = I(as.character(re$grpvar)), term = I(as.character(re$term)),
       grp = I(as.character(re$grp)), condval = I(re$condval), condsd = I(re$condsd))
}

# lme4 files its singular-fit note among the convergence messages; a singular fit
# that the optimizer finished is converged, any other message or warning is not
mer_converged <- function(m, warns) {
  conv <- m@optinfo$conv
  trouble <- setdiff(c(as.character(unlist(conv$lme4$messages)), warns),
                     "boundary (singular) fit: see help('isSingular')")
  conv$opt == 0 && length(trouble) == 0
}

newdata_of <- function(s) fitting_data[[s$data]][1:5, , drop = FALSE]

mer_fields <- function(s, run) {
  m <- run$model
  glmm <- isGLMM(m)
  beta <- fixef(m)
  V <- as.matrix(vcov(m))
  cs <- coef(summary(m))
  vc <- as.data.frame(VarCorr(m))
  theta <- getME(m, "theta")
  sm <- summary(m)
  nd <- newdata_of(s)
  fam <- family(m)
  ll <- logLik(m)
  cmp <- m@devcomp$cmp
  out <- list(
    id = unbox(s$id), engine = unbox(s$engine), dataset = unbox(s$data),
    formula = unbox(s$formula),
    formula_R = unbox(paste(deparse(formula(m), width.cutoff = 500L), collapse = " ")),
    call = unbox(paste(deparse(getCall(m), width.cutoff = 500L), collapse = " ")),
    family = unbox(fam$family), link = unbox(fam$link),
    nAGQ = unbox(if (glmm) m@devcomp$dims[["nAGQ"]] else NA),
    reml = unbox(if (glmm) FALSE else isREML(m)),
    weights = unbox(if (is.null(s$weights)) NA else s$weights),
    offset = unbox(if (is.null(s$offset)) NA else s$offset),
    note = unbox(if (is.null(s$note)) NA else s$note),
    logLik = unbox(as.numeric(ll)), df = unbox(attr(ll, "df")),
    AIC = unbox(AIC(m)), BIC = unbox(BIC(m)),
    # glmer: sum of squared deviance residuals, not -2 logLik (summary's "deviance" column
    # is -2 logLik: see aictab); lmer REML fit: the ML deviance at the REML estimates
    deviance = unbox(if (glmm) deviance(m) else deviance(m, REML = FALSE)),
    minus2logLik = unbox(-2 * as.numeric(ll)),
    REMLcrit = unbox(if (!glmm && isREML(m)) REMLcrit(m) else NA),
    aictab = named(sm$AICtab),
    df_resid = unbox(df.residual(m)), nobs = unbox(nobs(m)), ngrps = named(ngrps(m)),
    fixef_names = I(names(beta)), fixef = I(unname(beta)),
    fixef_se = I(unname(sqrt(diag(V)))),
    fixef_vcov = I(unname(V)),
    fixef_stat_name = unbox(colnames(cs)[3]), fixef_stat = I(unname(cs[, 3])),
    fixef_p = I(if (glmm) unname(cs[, 4]) else rep(NA, length(beta))),
    # glmer's vcov comes from the finite-difference Hessian in (theta, beta) of stage 2;
    # use.hessian = FALSE gives the one from the PIRLS fit at fixed theta instead (and
    # warns that the two differ, which is what it is recorded for)
    fixef_se_rx = I(if (glmm) unname(sqrt(diag(as.matrix(suppressWarnings(vcov(m, use.hessian = FALSE)))))) else NA),
    fixef_corr = I(unname(cov2cor(V))),
    theta_names = I(names(theta)), theta = I(unname(theta)),
    sigma = unbox(sigma(m)),
    varcorr = list(grp = I(vc$grp), var1 = I(na_or(vc$var1)), var2 = I(na_or(vc$var2)),
                   vcov = I(vc$vcov), sdcor = I(vc$sdcor)),
    scaled_residuals = quantiles(sm$residuals),
    ranef = ranef_table(ranef(m, condVar = TRUE)),
    fitted = list(rows = I(row_numbers(fitted(m))[1:10]),
                  link = I(unname(predict(m, type = "link"))[1:10]),
                  response = I(unname(fitted(m))[1:10])),
    predict_newdata = list(
      rows = I(1:5),
      response = I(na_or(unname(predict(m, newdata = nd, type = "response")))),
      link = I(na_or(unname(predict(m, newdata = nd, type = "link")))),
      response_population = I(na_or(unname(predict(m, newdata = nd, type = "response", re.form = NA))))),
    devcomp = named(cmp[!is.na(cmp)]),
    optimizer = unbox(m@optinfo$optimizer), feval = unbox(m@optinfo$feval),
    converged = unbox(mer_converged(m, run$warnings)),
    convergence_messages = I(as.character(unlist(m@optinfo$conv$lme4$messages))),
    warnings = I(run$warnings), messages = I(run$messages),
    singular = unbox(isSingular(m)),
    summary_text = I(capture.output(print(sm)))
  )
  if (s$engine == "glmer.nb") out$nb_theta <- unbox(getME(m, "glmer.nb.theta"))
  out
}

# glmer.nb's own search over log(theta) stops at tol = 5e-5, and lme4 1.1.31 passes an
# explicit tol on to glmer (an error), so the converged NB fit runs that search here:
# optimize() on log(theta) of -2 logLik of tight glmer fits with negative.binomial(theta)
nb_tight <- function(s, theta0) {
  fit_at <- function(theta) {
    fam <- bquote(MASS::negative.binomial(theta = .(theta)))
    cl <- make_call(modifyList(s, list(engine = "glmer")), tight = TRUE)
    cl$family <- fam
    run_logged(cl)
  }
  t0 <- proc.time()[["elapsed"]]
  warns <- character()
  opt <- optimize(function(lt) {
    r <- fit_at(exp(lt))
    warns <<- unique(c(warns, r$warnings))
    -2 * as.numeric(logLik(r$model))
  }, interval = log(theta0) + c(-1, 1), tol = 1e-8)
  run <- fit_at(exp(opt$minimum))
  run$seconds <- proc.time()[["elapsed"]] - t0
  run$search_warnings <- warns
  run
}

mer_tight <- function(s) {
  run <- if (s$engine == "glmer.nb") {
    nb_tight(s, getME(fitted_models[[s$id]], "glmer.nb.theta"))
  } else {
    run_logged(make_call(s, tight = TRUE))
  }
  m <- run$model
  res <- list(
    control = unbox(paste(if (s$engine == "lmer") "lmerControl(optCtrl = tight)" else
      'glmerControl(optimizer = "nloptwrap", optCtrl = tight, tolPwrss = 1e-12)',
      if (s$engine == "glmer.nb") "in each glmer(family = negative.binomial(theta)) fit of optimize(tol = 1e-8) over log(theta)" else "")),
    logLik = unbox(as.numeric(logLik(m))),
    fixef = I(unname(fixef(m))),
    fixef_se = I(unname(sqrt(diag(as.matrix(vcov(m)))))),
    theta = I(unname(getME(m, "theta"))),
    sigma = unbox(sigma(m)),
    sdcor = I(as.data.frame(VarCorr(m))$sdcor),
    ranef_condval = I(as.data.frame(ranef(m))$condval),
    converged = unbox(mer_converged(m, run$warnings)),
    warnings = I(run$warnings)
  )
  if (s$engine == "glmer.nb") res$nb_theta <- unbox(getME(m, "glmer.nb.theta"))
  list(fields = res, seconds = run$seconds, model = m)
}

tmb_fields <- function(s, run) {
  m <- run$model
  beta <- fixef(m)$cond
  V <- as.matrix(vcov(m)$cond)
  se <- sqrt(diag(V))
  z <- beta / se
  ll <- logLik(m)
  sm <- summary(m)
  nd <- newdata_of(s)
  fam <- family(m)
  re <- as.data.frame(ranef(m, condVar = TRUE))
  re <- re[re$component == "cond", ]
  stopifnot(nobs(m) == nrow(fitting_data[[s$data]]))  # fitted's rows below are the data's
  list(
    id = unbox(s$id), engine = unbox(s$engine), dataset = unbox(s$data),
    formula = unbox(s$formula),
    formula_R = unbox(paste(deparse(formula(m), width.cutoff = 500L), collapse = " ")),
    call = unbox(paste(deparse(getCall(m), width.cutoff = 500L), collapse = " ")),
    family = unbox(fam$family), link = unbox(fam$link),
    note = unbox(if (is.null(s$note)) NA else s$note),
    logLik = unbox(as.numeric(ll)), df = unbox(attr(ll, "df")),
    AIC = unbox(AIC(m)), BIC = unbox(BIC(m)), minus2logLik = unbox(-2 * as.numeric(ll)),
    df_resid = unbox(df.residual(m)), nobs = unbox(nobs(m)), ngrps = named(sm$ngrps$cond),
    fixef_names = I(names(beta)), fixef = I(unname(beta)), fixef_se = I(unname(se)),
    fixef_vcov = I(unname(V)), fixef_stat_name = unbox("z value"), fixef_stat = I(unname(z)),
    fixef_p = I(unname(2 * pnorm(-abs(z)))),
    sigma = unbox(sigma(m)),
    varcorr = tmb_varcorr(m),
    ranef = list(grpvar = I(as.character(re$grpvar)), term = I(as.character(re$term)),
                 grp = I(as.character(re$grp)), condval = I(re$condval), condsd = I(re$condsd)),
    fitted = list(rows = I(1:10), link = I(unname(predict(m, type = "link"))[1:10]),
                  response = I(unname(fitted(m))[1:10])),
    predict_newdata = list(rows = I(1:5),
                           response = I(unname(predict(m, newdata = nd, type = "response"))),
                           link = I(unname(predict(m, newdata = nd, type = "link")))),
    tmb_par_names = I(names(m$fit$par)), tmb_par = I(unname(m$fit$par)),
    optimizer = unbox("nlminb"),
    converged = unbox(m$fit$convergence == 0 && isTRUE(m$sdr$pdHess) && length(run$warnings) == 0),
    optimizer_message = unbox(m$fit$message), pd_hessian = unbox(isTRUE(m$sdr$pdHess)),
    warnings = I(run$warnings), messages = I(run$messages),
    summary_text = I(capture.output(print(sm)))
  )
}

fits <- list()
fitted_models <- list()
timing <- list()
for (s in models) {
  run <- run_logged(make_call(s))
  fitted_models[[s$id]] <- run$model
  if (s$engine == "glmmTMB") {
    f <- tmb_fields(s, run)
    secs <- run$seconds
  } else {
    f <- mer_fields(s, run)
    tight <- mer_tight(s)
    f$converged_fit <- tight$fields
    secs <- c(run$seconds, tight$seconds)
  }
  fits[[s$id]] <- f
  timing[[s$id]] <- secs
}

# ---- how the glmer and glmmTMB fits of one model relate ----------------------------
# glmer's Gamma family: check, on the fit, the formulas meta$gamma states
g <- fitted_models[["sleep_gamma"]]
gy <- model.response(model.frame(g))
gmu <- fitted(g)
gwt <- weights(g, type = "prior")
gcmp <- g@devcomp$cmp
gdev <- sum(Gamma()$dev.resids(gy, gmu, gwt))
gaic <- Gamma()$aic(gy, 1, gmu, gwt, gdev)
pearson <- sum(gwt * (gy - gmu)^2 / gmu^2)
gamma_check <- list(
  deviance_residual_sum = unbox(gdev),
  family_aic = unbox(gaic),
  ussq = unbox(gcmp[["ussq"]]), ldL2 = unbox(gcmp[["ldL2"]]),
  minus2logLik = unbox(-2 * as.numeric(logLik(g))),
  pearson_chisq = unbox(pearson), n = unbox(nobs(g)),
  sigma = unbox(sigma(g)), theta = unbox(getME(g, "theta")),
  sd_subject = unbox(attr(VarCorr(g)$Subject, "stddev")),
  tmb_sigma = unbox(sigma(fitted_models[["sleep_gamma_tmb"]])),
  tmb_shape = unbox(1 / sigma(fitted_models[["sleep_gamma_tmb"]])^2)
)
stopifnot(abs(gaic + gcmp[["ussq"]] + gcmp[["ldL2"]] + 2 * as.numeric(logLik(g))) < 1e-8 * abs(gaic),
          abs(sigma(g) - sqrt((pearson + gcmp[["ussq"]]) / nobs(g))) < 1e-12,
          abs(attr(VarCorr(g)$Subject, "stddev") - getME(g, "theta") * sigma(g)) < 1e-12)

# glmer.nb against glmmTMB: glmer at glmmTMB's theta, and glmer's Laplace deviance
# function evaluated at glmmTMB's estimates, show that the two optima differ because the
# approximations differ (expected against observed information in u), not the optimizers
nb <- fitted_models[["grouseticks_nb"]]
nbt <- fitted_models[["grouseticks_nb_tmb"]]
nb_at_tmb_theta <- glmer(str2lang(grouse_f), data = fitting_data[["grouseticks"]],
                         family = MASS::negative.binomial(sigma(nbt)),
                         control = tight_glmer)
devfun <- update(nb_at_tmb_theta, devFunOnly = TRUE)
tmb_sd <- attr(VarCorr(nbt)$cond$LOCATION, "stddev")
nb_compare <- list(
  glmer_nb_theta = unbox(getME(nb, "glmer.nb.theta")),
  glmer_nb_theta_converged = fits[["grouseticks_nb"]]$converged_fit$nb_theta,
  tmb_theta = unbox(sigma(nbt)),
  glmer_logLik_at_tmb_theta = unbox(as.numeric(logLik(nb_at_tmb_theta))),
  glmer_fixef_at_tmb_theta = I(unname(fixef(nb_at_tmb_theta))),
  glmer_sd_at_tmb_theta = unbox(attr(VarCorr(nb_at_tmb_theta)$LOCATION, "stddev")),
  glmer_laplace_logLik_at_tmb_estimates = unbox(-devfun(c(tmb_sd, fixef(nbt)$cond)) / 2),
  tmb_logLik = unbox(as.numeric(logLik(nbt)))
)

# glmer's nAGQ > 1 logLik is on another scale from its Laplace one (lme4 issues #161,
# #567): lme4 1.1.31 sums deviance residuals there, so logLik is the marginal
# log-likelihood less the saturated model's, sum(log dbinom(y, n, y / n)) for binomial
# (0 for 0/1 data, which is why contraception_agq10 and _laplace are comparable). The
# marginal log-likelihood at the AGQ estimates is also computed here by integrate().
agq <- fitted_models[["cbpp_agq10"]]
cb <- fitting_data[["cbpp"]]
agq_pars <- c(getME(agq, "theta"), fixef(agq))
marginal_loglik <- function(p) {
  eta <- drop(model.matrix(~ period, cb) %*% p[-1])
  herd_lik <- function(ix) integrate(function(u) vapply(u, function(uu) exp(sum(dbinom(
    cb$incidence[ix], cb$size[ix], plogis(eta[ix] + p[1] * uu), log = TRUE))), 0) * dnorm(u),
    -Inf, Inf, rel.tol = 1e-12)$value
  sum(log(vapply(split(seq_len(nrow(cb)), cb$herd), herd_lik, 0)))
}
saturated <- sum(dbinom(cb$incidence, cb$size, cb$incidence / cb$size, log = TRUE))
agq_check <- list(
  model = unbox("cbpp_agq10"),
  logLik = unbox(as.numeric(logLik(agq))),
  saturated_logLik = unbox(saturated),
  logLik_plus_saturated = unbox(as.numeric(logLik(agq)) + saturated),
  marginal_logLik_by_integrate = unbox(marginal_loglik(agq_pars))
)

# speed_dating against ../shared/refs/lme4.json (made by another script, same R)
shared_ref <- fromJSON(file.path(shared, "refs", "lme4.json"))$speed_dating
sdf <- fits[["speed_dating"]]
speed_dating_check <- list(
  shared_logLik = unbox(shared_ref$logLik),
  logLik_difference = unbox(sdf$logLik - shared_ref$logLik),
  max_abs_fixef_difference = unbox(max(abs(sdf$fixef - unlist(shared_ref$fixef)[sdf$fixef_names])))
)

meta <- list(
  script = unbox("tests/r/glmm_models.R"),
  R = unbox(R.version.string),
  lme4 = unbox(as.character(packageVersion("lme4"))),
  Matrix = unbox(as.character(packageVersion("Matrix"))),
  glmmTMB = unbox(as.character(packageVersion("glmmTMB"))),
  TMB = unbox(as.character(packageVersion("TMB"))),
  MASS = unbox(as.character(packageVersion("MASS"))),
  mlmRev = unbox(as.character(packageVersion("mlmRev"))),
  jsonlite = unbox(as.character(packageVersion("jsonlite"))),
  glmer_optimizers = I(glmerControl()$optimizer),
  tight_optCtrl = lapply(tight_opt, unbox),
  tight_tolPwrss = unbox(1e-12),
  converged = unbox(paste("lme4: optinfo$conv$opt == 0 and no lme4 convergence message or warning",
                          "(the boundary (singular) fit note aside); glmmTMB: nlminb convergence 0,",
                          "a positive definite Hessian and no warning")),
  fields = list(
    deviance = unbox("deviance(m): for glmer the sum of squared deviance residuals, not -2 logLik"),
    fixef_se = unbox(paste("sqrt(diag(vcov(m))); for glmer from the finite-difference Hessian of",
                           "stage 2 in (theta, beta); fixef_se_rx: vcov(m, use.hessian = FALSE)")),
    scaled_residuals = unbox("quantile(residuals(m, 'pearson', scaled = TRUE)), as summary() prints them"),
    ranef = unbox("as.data.frame(ranef(m, condVar = TRUE))"),
    fitted = unbox("the first 10 rows of the model frame; rows are row numbers in the data"),
    predict_newdata = unbox("predict(m, newdata = the data's first 5 rows); response_population: re.form = NA")
  ),
  gamma = list(
    glmer = unbox(paste(
      "glmer's Gamma objective, -2 logLik = Gamma()$aic(y, n, mu, wt, dev) + ||u||^2 + log|L|^2, where",
      "Gamma()$aic sets the dispersion to dev / n (dev the sum of the deviance residuals) and adds 2,",
      "and L is the Cholesky factor of Lambda'Z'WZ Lambda + I with W the GLM working weights",
      "(1 for the log link) not divided by any dispersion. sigma(m) = sqrt((Pearson X^2 + ||u||^2) / n)",
      "(devcomp sigmaML), a moment estimate of the coefficient of variation, and the random-effect",
      "SD in VarCorr is theta * sigma(m). So the dispersion that enters logLik (dev / n) is not",
      "sigma(m)^2, and neither enters the u terms: this is not the Laplace approximation of the",
      "Gamma GLMM's likelihood, and its logLik is not comparable with glmmTMB's.")),
    glmmTMB = unbox(paste(
      "glmmTMB: the Laplace approximation of the Gamma GLMM, the shape estimated by ML with the rest;",
      "sigma(m) = 1 / sqrt(shape), the coefficient of variation (brms's shape is 1 / sigma^2).")),
    check = gamma_check
  ),
  negbinomial = list(
    note = unbox(paste(
      "glmer.nb searches theta (optimize on log theta, tol 5e-5) around glmer fits of",
      "negative.binomial(theta); glmmTMB estimates theta with the rest. With the log link (not NB's",
      "canonical link) glmer's PIRLS weights are the expected information mu^2 / (mu + mu^2 / theta),",
      "TMB's Laplace uses the observed Hessian, so the two Laplace likelihoods, and their optima,",
      "differ (glmer_laplace_logLik_at_tmb_estimates against tmb_logLik).")),
    compare = nb_compare
  ),
  agq = list(
    note = unbox(paste(
      "glmer with nAGQ > 1 (lme4 1.1.31) reports logLik relative to the saturated model: the",
      "marginal log-likelihood minus sum(log p(y | mu = y)) (for binomial with trials",
      "sum(log dbinom(y, n, y / n)); 0 for 0/1 responses). Its nAGQ = 1 logLik is the absolute",
      "Laplace one, so logLik, AIC, BIC of nAGQ = 1 and nAGQ > 1 fits of binomial-with-trials or",
      "Poisson data are not comparable (lme4 issues #161, #567).")),
    check = agq_check
  ),
  speed_dating_check = speed_dating_check
)

out <- list(meta = meta, datasets = data_meta, models = unname(fits))
writeLines(toJSON(out, digits = NA, na = "null", null = "null", pretty = TRUE),
           file.path(out_dir, "glmm_models.json"))
cat(length(fits), "models,", length(data_meta), "datasets written to", out_dir, "\n")
for (f in fits) {
  tight_ll <- if (is.null(f$converged_fit)) NA else f$converged_fit$logLik
  cat(sprintf("%-24s %-8s %-28s logLik %.6f tight %+.2e conv %s %5.1fs %s\n", f$id, f$engine,
              paste(f$family, f$link), f$logLik, tight_ll - f$logLik, f$converged, sum(timing[[f$id]]),
              paste(c(f$warnings, f$convergence_messages), collapse = " | ")))
}
