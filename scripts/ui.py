"""Start `dagster dev` (make ui) so that it stops on Ctrl-C and SIGTERM however it was started.

Two things kept it running: a job started in the background (`make ui &`) inherits SIGINT as ignored, and dagster
dev maps SIGTERM to whatever SIGINT does, so it ignored both; and a SIGTERM to `make` stops make alone, leaving
dagster dev and its webserver and daemon running as orphans. So this script restores both signals' default
actions and asks Linux to send dagster dev a SIGTERM when its parent (make) dies, then becomes dagster dev.
"""

import ctypes
import os
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    dagster = str(Path(sys.executable).with_name("dagster"))
    os.execv(dagster, [dagster, "dev", *sys.argv[1:]])  # the death signal survives exec


if __name__ == "__main__":
    main()
