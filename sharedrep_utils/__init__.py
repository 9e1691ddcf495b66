"""sharedrep-kit: SharedRep-RLHF vs MaxMin-RLHF on Anthropic HH, from notebooks over a tested package."""

import os

# libgomp's default busy-waiting makes torch's threads stall one another when the cores are shared: 5-40x
# slower on the smoke models on 2 loaded cores (docs/performance.md). Passive waiting keeps the parallel
# speed-up of an idle machine. Only takes effect before torch loads; papermill kernels inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
