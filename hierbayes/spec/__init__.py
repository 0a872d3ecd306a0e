"""The front end shared by both engines: formula text to a design.

``rexpr`` reads R's expression grammar, ``formula`` splits fixed and random
terms, ``modelframe`` evaluates variables from a fixed table of R transforms,
and ``design`` builds the fixed-effect matrix and the random-effect blocks.
"""
