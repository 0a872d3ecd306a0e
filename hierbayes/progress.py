"""A one-line text progress bar, shared by the sampler and every many-fit workload.

On a terminal it redraws one line in place (carriage returns on stderr); in
a Jupyter kernel, where a carriage return on stderr leaves a line per redraw,
it is one display output updated in place; elsewhere (logs, pipes) only the
last line is printed.

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
        self.notebook = _in_kernel()
        self.handle = None  # the notebook's display output, once drawn
        self.live = sys.stderr.isatty() or self.notebook

    def draw(self, done: int, final: bool = False) -> None:
        if not self.enabled or not (self.live or final):
            return
        if self.notebook:
            self._display(self.line(done), final)
            return
        sys.stderr.write("\r" + self.line(done))
        if final:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def line(self, done: int) -> str:
        """The bar's text: label, bar, share, count, time elapsed and left."""
        frac = done / max(self.total, 1)
        width = 30
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        elapsed = time.perf_counter() - self.start
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        return (f"{self.label} |{bar}| {frac:4.0%} "
                f"{done}/{self.total} [{elapsed:4.1f}s elapsed, {eta:4.1f}s left]")

    def _display(self, text: str, final: bool) -> None:
        from IPython.display import display

        content = {"text/plain": text}
        if self.handle is None:
            self.handle = display(content, raw=True, display_id=True)
        else:
            self.handle.update(content, raw=True)

    def interrupted(self) -> None:
        """End a live bar's line, so the traceback that follows starts on its own."""
        if self.enabled and self.live and not self.notebook:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (an IPython shell with a kernel attached)."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None

