"""The director-like runner: answers, exit status and the CPU time of the child alone."""

from __future__ import annotations

import sys
import threading

from tools.cpi_process import run_measured

BURN = "import time\nend = time.process_time() + {0}\nwhile time.process_time() < end: pass\n"


def test_output_status_and_stdin_reach_the_caller():
    echo = "import sys; data = sys.stdin.read(); print(data.upper()); sys.exit(3)"
    stdout, stderr, status, _ = run_measured([sys.executable, "-c", echo], b"abc", {})
    assert (stdout, stderr, status) == (b"ABC\n", b"", 3)


def test_cpu_time_is_the_childs_own_even_with_another_child_running():
    busy: list[float] = []
    other = threading.Thread(
        target=lambda: busy.append(
            run_measured([sys.executable, "-c", BURN.format(0.6)], b"", {})[3]
        )
    )
    other.start()
    _, _, _, idle_cpu = run_measured(
        [sys.executable, "-c", "import time; time.sleep(0.3)"], b"", {}
    )
    _, _, _, burn_cpu = run_measured([sys.executable, "-c", BURN.format(0.3)], b"", {})
    other.join()
    assert idle_cpu < 0.25  # interpreter start only, not the sleep nor the other child
    assert 0.3 <= burn_cpu < 0.6
    assert busy[0] >= 0.6
