"""The one door through which ganforge runs a plugin's code: :func:`third_party_code`.

A plugin's code (its import, its hooks, a component's factory) may raise anything, SystemExit and
KeyboardInterrupt included, and may catch anything, the user's Ctrl-C included. The user's Ctrl-C is
told apart by the SIGINT that delivered it (:mod:`ganforge.guards.startup` counts them): when one
arrived while the plugin's code ran, the command stops, whatever that code raised or swallowed.
Everything else the code raised is the plugin's own failure, and what of it is no Exception
(``sys.exit()``, a KeyboardInterrupt of its own, GeneratorExit) comes out as one, :class:`PluginExit`:
a plugin that calls ``sys.exit()`` must not end every command, and a caller that catches Exception
catches every failure of the plugin's and lets the user's Ctrl-C through.
``os._exit()`` in a plugin ends the process on the spot; nothing in-process can catch it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ganforge.guards import startup


class PluginExit(Exception):
    """What a plugin's code raised that is no Exception (``sys.exit()``, a KeyboardInterrupt with no Ctrl-C
    behind it): its failure, not the end of the command."""

    def __init__(self, raised: BaseException) -> None:
        super().__init__(repr(raised))
        self.raised = raised


@contextmanager
def third_party_code() -> Iterator[None]:
    """Run a plugin's code inside: the user's Ctrl-C stops the command; the plugin's own exit is a PluginExit.

    An Exception the code raises comes out unchanged, for the caller to report as the plugin's.
    """
    with startup.counting_sigints():
        sigints = startup.sigints_received()
        try:
            yield
        except BaseException as error:
            if isinstance(error, startup.Interrupted) or startup.sigints_received() != sigints:
                if isinstance(error, KeyboardInterrupt | startup.Interrupted):
                    raise
                startup.stop()  # the plugin's code turned the Ctrl-C into an error of its own
            if not isinstance(error, Exception):
                raise PluginExit(error) from None
            raise
        if startup.sigints_received() != sigints:  # the plugin's code caught the Ctrl-C and went on
            startup.stop()
