"""The warm-up's metric windows are Stan's (windowed_adaptation.hpp), for every warm-up length."""

from __future__ import annotations

from hierbayes.bayes.native import warmup_windows


def stan_windows(num_warmup: int) -> list[tuple[int, int]]:
    """Stan's schedule, iteration by iteration as its sampler runs it (the reference)."""
    if num_warmup < 20:
        return []  # Stan: "no variance estimation is performed"
    init_buffer, term_buffer, base_window = 75, 50, 25
    if init_buffer + base_window + term_buffer > num_warmup:
        init_buffer = int(0.15 * num_warmup)
        term_buffer = int(0.1 * num_warmup)
        base_window = num_warmup - (init_buffer + term_buffer)
    window_size = base_window
    next_window = init_buffer + window_size - 1
    windows, samples = [], []
    for counter in range(num_warmup):
        # learn_variance: adaptation_window(), then end_adaptation_window()
        if init_buffer <= counter < num_warmup - term_buffer and counter != num_warmup:
            samples.append(counter)
        if counter == next_window and counter != num_warmup:
            # compute_next_window()
            if next_window != num_warmup - term_buffer - 1:
                window_size *= 2
                next_window = counter + window_size
                if next_window != num_warmup - term_buffer - 1:
                    if next_window + 2 * window_size >= num_warmup - term_buffer:
                        next_window = num_warmup - term_buffer - 1
            windows.append((samples[0], samples[-1] + 1))
            samples = []
    return windows


def test_every_warmup_length_from_0_to_3000_gets_stans_windows():
    for n in range(3001):
        assert warmup_windows(n) == stan_windows(n), n


def test_the_issues_example_and_the_default():
    # tune=800 was (250, 450), (450, 750) before: a window split in two that Stan keeps whole
    assert warmup_windows(800)[-1] == (250, 750)
    assert warmup_windows(1000) == [(75, 100), (100, 150), (150, 250), (250, 450), (450, 950)]
    assert warmup_windows(19) == [] and warmup_windows(20) == [(3, 18)]
