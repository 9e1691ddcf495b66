"""The sweep's own per-step memory record (notebooks/sweep_log.json)."""

import subprocess
import sys
import time

from sharedrep_utils.sweep import PeakRSS


def test_peak_rss_sees_a_child_process_memory():
    code = "import time; x = bytearray(300 * 2**20); x[::4096] = b'1' * len(x[::4096]); time.sleep(1.5)"
    with PeakRSS(interval_s=0.05) as memory:
        subprocess.run([sys.executable, "-c", code], check=True)
    assert memory.peak_mb is not None and memory.peak_mb > 250
    with PeakRSS(interval_s=0.05) as idle:
        time.sleep(0.2)
    assert idle.peak_mb is not None and idle.peak_mb < 250  # no children: nothing counted
