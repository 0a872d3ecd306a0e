"""The front end shared by both engines: formula text to a design.

``rexpr`` reads R's expression grammar, ``formula`` splits fixed and random
terms, ``transforms`` holds the fixed table of R transforms a formula may
call, ``modelframe`` evaluates the formula's variables with them, and
``design`` builds the fixed-effect matrix and the random-effect blocks.
"""
