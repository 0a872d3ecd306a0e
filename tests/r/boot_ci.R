# Reference intervals for tests/report/test_bootstrap.py: boot's boot.ci (types "perc", "norm",
# "basic") on a fixed set of replicates, so the interval formulas are checked exactly
# (bootMer's own replicates come from R's random streams, which Python does not share).
#
# Rerun from the repository root (a second):
#
#     Rscript tests/r/boot_ci.R
#
# It writes tests/data/r/boot_ci.json: the replicates t (R x 3), t0, and for each statistic
# and type the interval at conf = 0.9 and 0.95. Made with R 4.2.2, boot 1.3.28.1, jsonlite 1.8.4.

suppressPackageStartupMessages({
  library(boot)
  library(jsonlite)
})
if (!dir.exists(file.path("tests", "r"))) stop("Run this from the repository root.")
set.seed(1)
t <- cbind(rnorm(199, 5, 2), rexp(199, 0.5), rgamma(199, 2, 3))
t0 <- c(5.1, 1.8, 0.7)
b <- list(t0 = t0, t = t, R = nrow(t), sim = "parametric", stype = "i", call = quote(f()),
          statistic = function(x) x, data = 1:10, strata = rep(1, 10), weights = rep(0.1, 10))
class(b) <- "boot"
slot <- c(perc = "percent", norm = "normal", basic = "basic")
intervals <- list()
for (conf in c(0.9, 0.95)) for (ty in names(slot)) for (k in 1:3) {
  ci <- boot.ci(b, conf = conf, type = ty, index = k)[[slot[[ty]]]]
  ends <- ci[1, ncol(ci) - 1:0]
  intervals[[length(intervals) + 1]] <- list(conf = unbox(conf), type = unbox(ty),
                                             index = unbox(k), lower = unbox(ends[[1]]),
                                             upper = unbox(ends[[2]]))
}
out <- list(meta = list(R = unbox(R.version.string), boot = unbox(as.character(packageVersion("boot")))),
            t = t, t0 = t0, intervals = intervals)
writeLines(toJSON(out, digits = NA, pretty = TRUE), file.path("tests", "data", "r", "boot_ci.json"))
