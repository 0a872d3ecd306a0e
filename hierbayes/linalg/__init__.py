"""Linear algebra shared by both engines: cross-products, the blocked Cholesky, the linear predictor."""
