# Reference fits for tests/test_r_models.py: lmer models on data from R's own packages.
#
# Rerun from the repository root:
#
#     Rscript tests/r/lmer_models.R
#
# It writes tests/data/r/<dataset>.csv.gz (only the columns the models use) and
# tests/data/r/lmer_models.json (every fit, plus the datasets' column types and
# factor levels, so that Python can rebuild R's factors exactly). Each dataset is
# written, read back, and fitted as read back, so R and Python fit the same numbers
# (tests/r/common.R has the helpers, shared with tests/r/glmm_models.R).
#
# The committed files were made with R 4.2.2, lme4 1.1.31, Matrix 1.5.3, nlme 3.1.162,
# mlmRev 1.0.8, MASS 7.3.58.2, jsonlite 1.8.4 (Debian's r-cran-* packages, reference
# BLAS); the versions are also recorded in the JSON's "meta".

suppressPackageStartupMessages({
  library(lme4)
  library(nlme)
  library(mlmRev)
  library(MASS)
  library(jsonlite)
})

out_dir <- file.path("tests", "data", "r")
if (!dir.exists(file.path("tests", "r"))) stop("Run this from the repository root.")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)

source(file.path("tests", "r", "common.R"))  # plain, column_info, read_back, exact_text, write_dataset

# ---- datasets (deterministic changes only) ----------------------------------------
datasets <- list()
sources <- list()
add <- function(name, source, d) {
  datasets[[name]] <<- d
  sources[[name]] <<- source
}

add("Dyestuff", "lme4::Dyestuff", plain(lme4::Dyestuff, c("Batch", "Yield")))
add("Dyestuff2", "lme4::Dyestuff2", plain(lme4::Dyestuff2, c("Batch", "Yield")))
add("Penicillin", "lme4::Penicillin", plain(lme4::Penicillin, c("diameter", "plate", "sample")))
add("Pastes", "lme4::Pastes", plain(lme4::Pastes, c("strength", "batch", "cask", "sample")))
add("cake", "lme4::cake (temperature is an ordered factor)",
    plain(lme4::cake, c("replicate", "recipe", "temperature", "angle")))
sleep <- plain(lme4::sleepstudy, c("Reaction", "Days", "Subject"))
add("sleepstudy", "lme4::sleepstudy", sleep)
dotted <- sleep
names(dotted) <- c("Reaction", "days.sleep", "subj.id")
add("sleepstudy_dotted", "lme4::sleepstudy, Days renamed days.sleep and Subject subj.id", dotted)
orth <- plain(nlme::Orthodont, c("distance", "age", "Subject", "Sex"))
orth$age_months <- 12 * orth$age  # collinear with age: lme4 drops it
add("Orthodont", "nlme::Orthodont, plus age_months = 12 * age", orth)
orth_na <- orth[, c("distance", "age", "Subject", "Sex")]
orth_na$distance[seq(3, nrow(orth_na), by = 11)] <- NA
orth_na$age[seq(7, nrow(orth_na), by = 13)] <- NA
orth_na$Sex[c(50, 95)] <- NA
add("Orthodont_na", "nlme::Orthodont with NAs: distance rows 3, 14, ...; age rows 7, 20, ...; Sex rows 50, 95",
    orth_na)
add("Pixel", "nlme::Pixel", plain(nlme::Pixel, c("Dog", "Side", "day", "pixel")))
add("Machines", "nlme::Machines", plain(nlme::Machines, c("Worker", "Machine", "score")))
add("ergoStool", "nlme::ergoStool", plain(nlme::ergoStool, c("effort", "Type", "Subject")))
add("Rail", "nlme::Rail", plain(nlme::Rail, c("Rail", "travel")))
add("BodyWeight", "nlme::BodyWeight", plain(nlme::BodyWeight, c("weight", "Time", "Rat", "Diet")))
oats <- plain(nlme::Oats, c("Block", "Variety", "nitro", "yield"))
oats$nitro_o <- ordered(oats$nitro)
oats$nitro_f <- factor(oats$nitro)
add("Oats", "nlme::Oats, plus nitro_o = ordered(nitro) and nitro_f = factor(nitro)", oats)
cell <- oats[!(oats$Variety == "Victory" & oats$nitro == 0.6), c("Block", "Variety", "nitro_f", "yield")]
rownames(cell) <- NULL
add("Oats_cell", "nlme::Oats without the rows of Variety Victory at nitro 0.6 (an empty cell)", cell)
add("Oxboys", "nlme::Oxboys", plain(nlme::Oxboys, c("Subject", "age", "height")))
add("Exam", "mlmRev::Exam", plain(mlmRev::Exam, c("school", "normexam", "schgend", "standLRT", "sex")))
add("Hsb82", "mlmRev::Hsb82", plain(mlmRev::Hsb82, c("school", "mAch", "meanses", "sector", "cses")))
add("egsingle", "mlmRev::egsingle", plain(mlmRev::egsingle, c("schoolid", "childid", "year", "math")))
add("Gcsemv", "mlmRev::Gcsemv (written has NAs of its own)", plain(mlmRev::Gcsemv, c("school", "gender", "written")))
add("ScotsSec", "mlmRev::ScotsSec", plain(mlmRev::ScotsSec, c("verbal", "attain", "primary", "sex", "second")))
add("Early", "mlmRev::Early", plain(mlmRev::Early, c("id", "cog", "age", "trt")))
add("ChickWeight", "datasets::ChickWeight (Chick is an ordered factor)",
    plain(datasets::ChickWeight, c("weight", "Time", "Chick", "Diet")))
add("Sitka", "MASS::Sitka (tree is an integer column)", plain(MASS::Sitka, c("size", "Time", "tree", "treat")))
add("petrol", "MASS::petrol", plain(MASS::petrol, c("No", "SG", "VP", "V10", "EP", "Y")))
add("oats_MASS", "MASS::oats", plain(MASS::oats, c("B", "V", "N", "Y")))

# ---- write, read back, describe ---------------------------------------------------
data_meta <- list()
fitting_data <- list()
for (name in names(datasets)) {
  written <- write_dataset(datasets[[name]], name, sources[[name]], out_dir)
  fitting_data[[name]] <- written$data
  data_meta[[name]] <- written$meta
}

# ---- models ---------------------------------------------------------------------
models <- list(
  list("dyestuff", "Dyestuff", "Yield ~ 1 + (1 | Batch)", TRUE),
  list("dyestuff_ml", "Dyestuff", "Yield ~ 1 + (1 | Batch)", FALSE),
  list("dyestuff2_singular", "Dyestuff2", "Yield ~ 1 + (1 | Batch)", TRUE),
  list("penicillin_crossed", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", TRUE),
  list("penicillin_crossed_ml", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", FALSE),
  list("pastes_nested", "Pastes", "strength ~ 1 + (1 | batch/cask)", TRUE),
  list("pastes_crossed_sample", "Pastes", "strength ~ 1 + (1 | batch) + (1 | sample)", TRUE),
  list("cake_ordered", "cake", "angle ~ recipe * temperature + (1 | recipe:replicate)", TRUE),
  list("sleep_dotted", "sleepstudy_dotted", "Reaction ~ days.sleep + (days.sleep | subj.id)", TRUE),
  list("sleep_factor", "sleepstudy", "Reaction ~ factor(Days) + (1 | Subject)", TRUE),
  list("orthodont_power", "Orthodont", "distance ~ age + I(age^2) + (1 | Subject)", TRUE),
  list("orthodont_I_centred", "Orthodont", "distance ~ I(age - 11) * Sex + (I(age - 11) | Subject)", TRUE),
  list("orthodont_sex_ml", "Orthodont", "distance ~ age * Sex + (age | Subject)", FALSE),
  list("orthodont_uncorrelated", "Orthodont", "distance ~ age + (age || Subject)", TRUE),
  list("orthodont_rank_deficient", "Orthodont", "distance ~ age + age_months + Sex + (1 | Subject)", TRUE),
  list("orthodont_na_rows", "Orthodont_na", "distance ~ age + Sex + (1 | Subject)", TRUE),
  list("pixel_power", "Pixel", "pixel ~ day + I(day^2) + (day | Dog) + (1 | Dog:Side)", TRUE),
  list("machines_nested", "Machines", "score ~ Machine + (1 | Worker/Machine)", TRUE),
  list("machines_factor_slopes", "Machines", "score ~ Machine + (0 + Machine | Worker)", TRUE),
  list("ergostool", "ergoStool", "effort ~ Type + (1 | Subject)", TRUE),
  list("rail", "Rail", "travel ~ 1 + (1 | Rail)", TRUE),
  list("bodyweight", "BodyWeight", "weight ~ Time * Diet + (Time | Rat)", TRUE),
  list("oats_factor", "Oats", "yield ~ factor(nitro) + (1 | Block/Variety)", TRUE),
  list("oats_ordered", "Oats", "yield ~ Variety + nitro_o + (1 | Block/Variety)", TRUE),
  list("oats_empty_cell", "Oats_cell", "yield ~ Variety * nitro_f + (1 | Block)", TRUE),
  list("oxboys_poly", "Oxboys", "height ~ poly(age, 2) + (age | Subject)", TRUE),
  list("exam_scale", "Exam", "normexam ~ scale(standLRT) + (scale(standLRT) | school)", TRUE),
  list("exam", "Exam", "normexam ~ standLRT + sex + schgend + (standLRT | school)", TRUE),
  list("hsb_cses_sector", "Hsb82", "mAch ~ cses * sector + (cses | school)", TRUE),
  list("hsb_sector_cses", "Hsb82", "mAch ~ sector * cses + (cses | school)", TRUE),
  list("hsb_meanses_ml", "Hsb82", "mAch ~ meanses + cses * sector + (cses | school)", FALSE),
  list("egsingle_three_level", "egsingle", "math ~ year + (1 | schoolid/childid)", TRUE),
  list("gcsemv_na_rows", "Gcsemv", "written ~ gender + (1 | school)", TRUE),
  list("scotssec_crossed", "ScotsSec", "attain ~ verbal + sex + (1 | primary) + (1 | second)", TRUE),
  list("early_nested_interaction", "Early", "cog ~ age + age:trt + (1 | id)", TRUE),
  list("chick_log", "ChickWeight", "log(weight) ~ Time * Diet + (Time | Chick)", TRUE),
  list("sitka", "Sitka", "size ~ Time + treat + (Time | tree)", TRUE),
  list("petrol_ml", "petrol", "Y ~ SG + VP + V10 + EP + (1 | No)", FALSE),
  list("oats_mass_interaction", "oats_MASS", "Y ~ N * V + (1 | B/V)", TRUE)
)

quiet_fit <- function(expr) suppressWarnings(suppressMessages(expr))

fit_one <- function(spec) {
  id <- spec[[1]]; dname <- spec[[2]]; fstr <- spec[[3]]; reml <- spec[[4]]
  d <- fitting_data[[dname]]
  warns <- character()
  msgs <- character()
  m <- withCallingHandlers(
    lmer(as.formula(fstr), data = d, REML = reml),
    warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(mm) { msgs <<- c(msgs, trimws(conditionMessage(mm))); invokeRestart("muffleMessage") }
  )
  conv <- m@optinfo$conv
  # lme4 files its singular-fit note among the convergence messages; a singular fit
  # that the optimizer finished is converged, any other message or warning is not
  trouble <- setdiff(c(as.character(unlist(conv$lme4$messages)), warns),
                     "boundary (singular) fit: see help('isSingular')")
  converged <- conv$opt == 0 && length(trouble) == 0
  beta <- fixef(m)
  vc <- as.data.frame(VarCorr(m))
  X <- getME(m, "X")
  dropped <- names(attr(X, "col.dropped"))
  theta <- getME(m, "theta")
  na_or <- function(x) ifelse(is.na(x), NA, x)
  # The same model with the optimizer run to convergence: lme4's default stopping rule
  # (xtol_rel = 1e-4) can leave estimates ~1e-4 from the optimum on a flat criterion.
  tight <- quiet_fit(update(m, control = lmerControl(optCtrl = list(
    xtol_rel = 1e-12, ftol_abs = 1e-14, xtol_abs = 1e-12, maxeval = 1e6))))
  tvc <- as.data.frame(VarCorr(tight))
  list(
    id = unbox(id),
    dataset = unbox(dname),
    formula = unbox(fstr),
    reml = unbox(reml),
    criterion = unbox(-2 * as.numeric(logLik(m))),
    fixef_names = I(names(beta)),
    fixef = I(unname(beta)),
    fixef_se = I(unname(sqrt(diag(as.matrix(vcov(m)))))),
    theta_names = I(names(theta)),
    theta = I(unname(theta)),
    sigma = unbox(sigma(m)),
    varcorr = list(grp = I(vc$grp), var1 = I(na_or(vc$var1)), var2 = I(na_or(vc$var2)),
                   vcov = I(vc$vcov), sdcor = I(vc$sdcor)),
    nobs = unbox(nobs(m)),
    ngrps = lapply(as.list(ngrps(m)), unbox),
    dropped_columns = I(if (is.null(dropped)) character() else dropped),
    converged = unbox(converged),
    convergence_messages = I(as.character(unlist(conv$lme4$messages))),
    warnings = I(warns),
    messages = I(msgs),
    singular = unbox(isSingular(m)),
    optimizer = unbox(m@optinfo$optimizer),
    converged_fit = list(
      criterion = unbox(-2 * as.numeric(logLik(tight))),
      fixef = I(unname(fixef(tight))),
      fixef_se = I(unname(sqrt(diag(as.matrix(vcov(tight)))))),
      sigma = unbox(sigma(tight)),
      sdcor = I(tvc$sdcor)
    )
  )
}

fits <- lapply(models, fit_one)
ids <- vapply(models, function(s) s[[1]], "")
stopifnot(!anyDuplicated(ids))

# ---- profile intervals of a singular fit (Dyestuff2) ------------------------------------
# confint(m, method = "profile") inverts a spline through profile steps of 1/8 in zeta; at
# this singular fit that is 1.7e-4 off in the intercept's lower end (4.31210 against 4.31284).
# Steps of 1/64 bring the spline within 1e-6 of the exact profile, which is also computed
# here for the intercept: the ML deviance of lmer(Yield ~ 0 + (1 | Batch), offset = b),
# each refit started in the interior (lme4's theta = 1), solved for zeta(b) = -+1.96.
d2 <- suppressMessages(lmer(Yield ~ 1 + (1 | Batch), data = fitting_data[["Dyestuff2"]], REML = TRUE))
quiet <- function(expr) suppressWarnings(suppressMessages(expr))
ci_default <- quiet(confint(d2, method = "profile", oldNames = FALSE))
ci_fine <- quiet(confint(profile(d2, signames = FALSE, delta.cutoff = 1 / 64)))
d2_ml <- refitML(d2)
ml_deviance_at <- function(b) {
  deviance(quiet(lmer(Yield ~ 0 + (1 | Batch), data = fitting_data[["Dyestuff2"]], REML = FALSE,
                      offset = rep(b, nrow(fitting_data[["Dyestuff2"]])),
                      control = lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12)))))
}
zeta <- function(b) sign(b - fixef(d2_ml)) * sqrt(max(ml_deviance_at(b) - deviance(d2_ml), 0))
z <- qnorm(0.975)
b_hat <- unname(fixef(d2_ml))
exact <- c(uniroot(function(b) zeta(b) + z, c(b_hat - 3, b_hat), tol = 1e-12)$root,
           uniroot(function(b) zeta(b) - z, c(b_hat, b_hat + 3), tol = 1e-12)$root)
profile_ref <- list(
  model = unbox("dyestuff2_singular"),
  param = I(rownames(ci_fine)),
  call = unbox('confint(profile(m, signames = FALSE, delta.cutoff = 1/64)), m the REML fit'),
  lower = I(unname(ci_fine[, 1])),
  upper = I(unname(ci_fine[, 2])),
  default_call = unbox('confint(m, method = "profile", oldNames = FALSE)'),
  default_lower = I(unname(ci_default[, 1])),
  default_upper = I(unname(ci_default[, 2])),
  intercept_exact = I(exact)
)

meta <- list(
  script = unbox("tests/r/lmer_models.R"),
  R = unbox(R.version.string),
  lme4 = unbox(as.character(packageVersion("lme4"))),
  Matrix = unbox(as.character(packageVersion("Matrix"))),
  nlme = unbox(as.character(packageVersion("nlme"))),
  mlmRev = unbox(as.character(packageVersion("mlmRev"))),
  MASS = unbox(as.character(packageVersion("MASS"))),
  jsonlite = unbox(as.character(packageVersion("jsonlite"))),
  criterion = unbox("-2 logLik(m): the REML criterion of a REML fit, the deviance of an ML fit"),
  converged = unbox(paste("optinfo$conv$opt == 0 and no lme4 convergence message or warning",
                          "(the boundary (singular) fit note aside)"))
)

out <- list(meta = meta, datasets = data_meta, models = fits, profile_dyestuff2 = profile_ref)
writeLines(toJSON(out, digits = NA, na = "null", null = "null", pretty = TRUE),
           file.path(out_dir, "lmer_models.json"))
cat(length(fits), "models,", length(datasets), "datasets written to", out_dir, "\n")
for (f in fits) {
  cat(sprintf("%-28s %s crit %.6f conv %s sing %s %s\n", f$id, if (f$reml) "REML" else "ML  ",
              f$criterion, f$converged, f$singular, paste(c(f$warnings, f$convergence_messages), collapse = " | ")))
}
