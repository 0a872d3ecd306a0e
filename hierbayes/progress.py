"""A one-line text progress bar, shared by the sampler and the bootstrap.

Examples
--------
>>> from hierbayes.progress import Progress
>>> bar = Progress(total=10, chains=1, enabled=False)
>>> bar.draw(5)  # disabled: draws nothing
"""

from __future__ import annotations

import sys
import time


class Progress:
    """A one-line text progress bar over all chains, redrawn from a polling thread."""

    def __init__(self, total: int, chains: int, enabled: bool, label: str | None = None) -> None:
        self.total, self.chains, self.enabled = total, chains, enabled
        self.label = label or f"Sampling {chains} chains"
        self.start = time.perf_counter()
        # Redraw in place on a terminal or in Jupyter; elsewhere (logs, pipes) print the last line only.
        self.live = sys.stderr.isatty() or "ipykernel" in sys.modules

    def draw(self, done: int, final: bool = False) -> None:
        if not self.enabled or not (self.live or final):
            return
        frac = done / max(self.total, 1)
        width = 30
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        elapsed = time.perf_counter() - self.start
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        sys.stderr.write(
            f"\r{self.label} |{bar}| {frac:4.0%} "
            f"{done}/{self.total} [{elapsed:4.1f}s elapsed, {eta:4.1f}s left]"
        )
        if final:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def interrupted(self) -> None:
        """End a live bar's line, so the traceback that follows starts on its own."""
        if self.enabled and self.live:
            sys.stderr.write("\n")
            sys.stderr.flush()
