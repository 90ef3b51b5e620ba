"""Numbers read from text a user or a server gives (options, environment variables, headers): ASCII digits only.

``str.isdigit()`` accepts '²' and '٣', and ``int()`` accepts '٣', ' 3', '+3' and '1_000' but not '²': a check
by the one and a parse by the other let some text through to a traceback and read other text as a number
nobody typed. Here a count is ASCII digits 0-9 and nothing else, and what is accepted is said once.
"""

from __future__ import annotations

import re

DIGITS = re.compile(r"[0-9]+", re.ASCII)
MAX_DIGITS = 18  # a count beyond 10**18 is no count ganforge takes; int() of a huge text is slow besides
ACCEPTED_COUNT = "a whole number in the digits 0-9"


def parse_count(text: str) -> int | None:
    """``text`` as a non-negative integer when it is ASCII digits alone (at most ``MAX_DIGITS``); None otherwise."""
    if len(text) > MAX_DIGITS or DIGITS.fullmatch(text) is None:
        return None
    return int(text)
