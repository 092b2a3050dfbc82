"""The restart budget's rolling hour, with a fake clock."""

from __future__ import annotations

from appliance.core.store import StateStore
from appliance.live.budget import StartBudget


def test_the_budget_counts_every_start_in_a_rolling_hour(tmp_path):
    now = [1_000_000.0]
    store = StateStore(tmp_path)
    budget = StartBudget(store, per_hour=2, clock=lambda: now[0])
    assert budget.blocked_until() is None
    budget.record()
    now[0] += 10
    budget.record()
    assert budget.blocked_until() == 1_000_000.0 + 3600
    now[0] = 1_000_000.0 + 3600
    assert budget.blocked_until() is None and budget.used() == 1
    reloaded = StartBudget(StateStore(tmp_path), per_hour=2, clock=lambda: now[0])
    assert reloaded.used() == 1  # persisted
    store.update(stream_starts=[now[0] + 10_000, now[0] + 20_000])  # the wall clock was set back
    assert StartBudget(store, per_hour=2, clock=lambda: now[0]).blocked_until() == now[0] + 3600
