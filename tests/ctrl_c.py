"""A real Ctrl-C (SIGINT) pressed inside the test process, for tests of what ganforge does with one."""

import contextlib
import os
import signal
import threading
import time

import pytest

can_signal_here = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signal handlers need the main thread"
)


def press_ctrl_c():
    """A real SIGINT, as the terminal sends for Ctrl-C, delivered while the plugin's code runs."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)  # the signal lands here
    raise AssertionError("the SIGINT was not delivered")


def press_ctrl_c_and_swallow_it():
    with contextlib.suppress(BaseException):  # a plugin that catches everything, the user's Ctrl-C included
        press_ctrl_c()
