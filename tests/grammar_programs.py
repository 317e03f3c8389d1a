"""Programs drawn from grammars/gdsl.lark (fuzzkit.grammar_strategy), drawn once per test run
and shared by the tests of the tools that read model text (the highlighter, the formatter).

    GDSL_PROGRAMS=5000 GDSL_PROGRAMS_SEED=7 python3 -m pytest tests/test_fmt.py tests/test_highlight.py
"""

from __future__ import annotations

import functools
import os
import random

COUNT = int(os.environ.get("GDSL_PROGRAMS", "1000"))
SEED = int(os.environ.get("GDSL_PROGRAMS_SEED", random.randrange(2**32)))


@functools.cache
def programs() -> tuple[str, ...]:
    """COUNT programs drawn from the grammar with hypothesis's from_lark (seed SEED)."""
    from fuzzkit import grammar_strategy
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    drawn: list[str] = []

    @hseed(SEED)
    @settings(max_examples=COUNT, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(grammar_strategy())
    def draw(text):
        drawn.append(text)

    draw()
    print(f"\n{len(drawn)} programs drawn from the grammar (GDSL_PROGRAMS_SEED={SEED})")
    return tuple(drawn[:COUNT])
