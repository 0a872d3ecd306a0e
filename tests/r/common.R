# Helpers shared by the reference scripts in tests/r (sourced, not run on its own; the
# glmmTMB and brms helpers at the end need those packages loaded by the caller):
# datasets are written as csv.gz, read back, and fitted as read back, so that R and
# Python fit the same numbers; their column types and factor levels go into the JSON.

plain <- function(d, cols) {
  # groupedData and tibbles carry extra classes and attributes; keep a bare data.frame
  d <- as.data.frame(d)[, cols, drop = FALSE]
  for (col in cols) attributes(d[[col]])[setdiff(names(attributes(d[[col]])), c("levels", "class"))] <- NULL
  rownames(d) <- NULL
  d
}

column_info <- function(x) {
  if (is.factor(x)) {
    list(type = unbox("factor"), levels = I(levels(x)), ordered = unbox(is.ordered(x)))
  } else if (is.integer(x)) {
    list(type = unbox("integer"))
  } else if (is.numeric(x)) {
    list(type = unbox("numeric"))
  } else {
    stop("unexpected column type ", class(x))
  }
}

read_back <- function(path, info) {
  classes <- vapply(info, function(i) switch(as.character(i$type), factor = "character",
                                             integer = "integer", numeric = "numeric"), "")
  d <- read.csv(gzfile(path), colClasses = classes, na.strings = "NA", check.names = FALSE)
  for (col in names(info)) {
    i <- info[[col]]
    if (as.character(i$type) == "factor") {
      d[[col]] <- factor(d[[col]], levels = as.character(i$levels), ordered = as.logical(i$ordered))
    }
  }
  d
}

exact_text <- function(x) {
  short <- sprintf("%.15g", x)
  long <- sprintf("%.17g", x)
  same <- suppressWarnings(as.numeric(short)) == x  # "NA" is not a number: NA, and NA stays
  ifelse(is.na(x), NA, ifelse(same, short, long))
}

# Writes d to <out_dir>/<name>.csv.gz, reads it back, checks the trip was exact, and
# returns the data as read back with its description for the JSON. With keep_existing,
# a file already there (another script's) is left as it is and must hold the same bytes.
write_dataset <- function(d, name, source, out_dir, keep_existing = FALSE) {
  info <- lapply(d, column_info)
  file <- paste0(name, ".csv.gz")
  path <- file.path(out_dir, file)
  target <- if (keep_existing && file.exists(path)) tempfile(fileext = ".csv.gz") else path
  con <- gzfile(target, "w")
  # 15 significant digits where they give the double back, else 17: every double survives
  # the trip through text exactly, and short decimals stay short
  w <- d
  for (col in names(w)) if (is.double(w[[col]])) w[[col]] <- exact_text(w[[col]])
  write.csv(w, con, row.names = FALSE, na = "NA", quote = which(vapply(d, is.factor, TRUE)))
  close(con)
  if (target != path) {
    same <- identical(readBin(target, "raw", file.size(target)), readBin(path, "raw", file.size(path)))
    unlink(target)
    if (!same) stop(path, " exists with other content; give this dataset another name")
  }
  back <- read_back(path, info)
  stopifnot(identical(back, d))
  list(data = back,
       meta = list(file = unbox(file), source = unbox(source), nrow = unbox(nrow(d)), columns = info))
}

tmb_varcorr <- function(m) {
  rows <- list(grp = character(), var1 = character(), var2 = character(), vcov = numeric(), sdcor = numeric())
  add_row <- function(g, v1, v2, vcv, sdc) {
    rows$grp <<- c(rows$grp, g); rows$var1 <<- c(rows$var1, v1); rows$var2 <<- c(rows$var2, v2)
    rows$vcov <<- c(rows$vcov, vcv); rows$sdcor <<- c(rows$sdcor, sdc)
  }
  # rows in the order of lme4's as.data.frame(VarCorr(m)): variances, then covariances
  for (g in names(VarCorr(m)$cond)) {
    v <- VarCorr(m)$cond[[g]]
    sds <- attr(v, "stddev")
    nm <- names(sds)
    for (i in seq_along(sds)) add_row(g, nm[i], NA, v[i, i], sds[i])
    if (length(sds) > 1) {
      cr <- attr(v, "correlation")
      lt <- which(lower.tri(v), arr.ind = TRUE)
      for (k in seq_len(nrow(lt))) {
        i <- lt[k, "row"]; j <- lt[k, "col"]
        add_row(g, nm[j], nm[i], v[i, j], cr[i, j])
      }
    }
  }
  lapply(rows, function(x) I(unname(x)))
}

draws_summary <- function(draws, keep) {
  # posterior::summarise_draws of the variables in keep, as the brms scripts record them
  s <- summarise_draws(subset_draws(draws, variable = keep),
                       mean, sd, mcse_mean, rhat, ess_bulk, ess_tail,
                       ~quantile(.x, probs = c(0.025, 0.975)))
  list(variable = I(s$variable), mean = I(s$mean), sd = I(s$sd), mcse_mean = I(s$mcse_mean),
       rhat = I(s$rhat), ess_bulk = I(s$ess_bulk), ess_tail = I(s$ess_tail),
       q2.5 = I(s[["2.5%"]]), q97.5 = I(s[["97.5%"]]))
}

prior_table <- function(fit) {
  p <- as.data.frame(prior_summary(fit))
  cols <- intersect(c("prior", "class", "coef", "group", "resp", "dpar", "nlpar", "lb", "ub", "source"), names(p))
  lapply(p[cols], function(x) I(as.character(x)))
}

shipped <- function(name) {
  # a dataset as hierbayes ships it (hierbayes/datasets/data), strings as factors with R's
  # alphabetical levels (hb.datasets.load's too), the id columns sleepstudy and cbpp number
  # made factors as in lme4
  d <- read.csv(gzfile(file.path("hierbayes", "datasets", "data", paste0(name, ".csv.gz"))),
                stringsAsFactors = TRUE)
  ids <- list(sleepstudy = "Subject", cbpp = c("herd", "period"), gpa = "student")[[name]]
  for (col in ids) d[[col]] <- factor(d[[col]])
  d
}
