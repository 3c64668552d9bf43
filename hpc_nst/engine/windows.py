"""Long content in overlapping windows: where the windows go and how they are joined.

With ``optim.window_s`` > 0, content longer than one window is optimised window by window
(each window alone, against the style summarised over its whole duration, each from its own
seeded start), and the windows' optimised log-magnitudes are joined by overlap-add with linear
cross-fades over ``optim.window_overlap_s``: the weights of overlapping windows sum to one at
every frame, so the joined spectrogram has no seam. One Griffin-Lim over the joined spectrogram
then gives one continuous phase (no click at a window edge).
"""

from __future__ import annotations

import torch


def spans(n_frames: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of windows of ``window`` frames covering ``n_frames``, consecutive
    windows sharing ``overlap`` frames; the last window ends at ``n_frames`` (it may share more
    with the one before)."""
    if n_frames <= window:
        return [(0, n_frames)]
    if not 0 <= overlap < window:
        raise ValueError(f"overlap {overlap} must be in [0, {window})")
    hop = window - overlap
    starts = list(range(0, n_frames - window, hop)) + [n_frames - window]
    return [(s, s + window) for s in starts]


def weights(windows: list[tuple[int, int]], n_frames: int) -> list[torch.Tensor]:
    """Per window, a weight per frame: 1 inside, linear ramps where windows overlap; the
    weights of all windows sum to 1 at every frame."""
    out = []
    for k, (a, b) in enumerate(windows):
        w = torch.ones(b - a, dtype=torch.float64)
        if k > 0:  # ramp up over the overlap with the previous window
            prev_end = windows[k - 1][1]
            n = max(prev_end - a, 0)
            if n:
                w[:n] = torch.arange(1, n + 1, dtype=torch.float64) / (n + 1)
        if k < len(windows) - 1:  # ramp down over the overlap with the next window
            nxt = windows[k + 1][0]
            n = max(b - nxt, 0)
            if n:
                w[b - a - n:] = torch.minimum(
                    w[b - a - n:], 1 - torch.arange(1, n + 1, dtype=torch.float64) / (n + 1))
        out.append(w)
    total = torch.zeros(n_frames, dtype=torch.float64)
    for (a, b), w in zip(windows, out):
        total[a:b] += w
    return [(w / total[a:b]).float() for (a, b), w in zip(windows, out)]


def join(parts: list[torch.Tensor], windows: list[tuple[int, int]], n_frames: int
         ) -> torch.Tensor:
    """Overlap-add ``(bins, window frames)`` parts into ``(bins, n_frames)``."""
    out = torch.zeros(parts[0].shape[0], n_frames, dtype=parts[0].dtype)
    for part, (a, b), w in zip(parts, windows, weights(windows, n_frames)):
        out[:, a:b] += part * w.to(part.dtype)
    return out
