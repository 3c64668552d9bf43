"""``layered-post``: ``layered``'s rendering through a learned, style-conditioned post-filter
(:mod:`hpc_nst.models.post_filter`, the shipped ``hpc_nst/assets/post-filter.pt``): per
log-mel band and 16 ms frame a gain of at most +-12 dB, predicted from the rendering's
band-normalised log-mel and the style recording's band dynamics and texture statistics (v2),
applied with the rendering's own phase; no optimisation. The filter was trained on 600 FluidR3
triplets of their own seed against their targets' dynamics statistics
(``benchmarks/train_post_filter.py``): it takes back some of what cutting, fitting and
layering recorded notes loses (docs/quality.md, "layered-post" and "layered-post v2").
"""

from __future__ import annotations

import numpy as np

from hpc_nst.config import JobConfig
from hpc_nst.engine.methods.base import per_pair_method
from hpc_nst.engine.methods.layered import layered_transfer
from hpc_nst.engine.sampler import SR
from hpc_nst.engine.transfer import at_peak_of
from hpc_nst.models.post_filter import load_post_filter, post_filter


def layered_post_transfer(content: np.ndarray, style: np.ndarray, cfg: JobConfig) -> np.ndarray:
    rendered = layered_transfer(content, style, cfg)
    return at_peak_of(post_filter(rendered, style, load_post_filter()), content)


per_pair_method("layered-post", "layered's rendering through a learned post-filter (band "
                "gains from the style's dynamics and texture, trained on renders)",
                layered_post_transfer, sample_rate=SR)
