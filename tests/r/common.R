# Helpers shared by the reference scripts in tests/r (sourced, not run on its own):
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
