"""Make room first, then start: a run needing mining's power waits for the agent's
confirmation that mining is down, and the cap holds through the whole transition."""

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.admission import admit, confirm_mining
from scheduler.core.jobs import JobKind
from scheduler.core.ledger import AiClaim, SiteLedger
from scheduler.core.power import MINER_MODELS, Fleet, SitePower

SITE = SitePower(
    "tx", cap_w=10e6, overhead=1.1, gpus=2000, gpu_load_w=1000, gpu_idle_w=100,
    fleets=(Fleet("s19", MINER_MODELS["S19XP"], 2000), Fleet("s21", MINER_MODELS["S21"], 2000)),
)


def mining_fills_the_rest() -> SiteLedger:
    budget = SITE.it_budget_w() - SITE.gpus * SITE.gpu_idle_w
    s21 = min(SITE.fleets[1].max_w, budget - SITE.fleets[0].standby_w)
    s19 = min(SITE.fleets[0].max_w, budget - s21)
    return SiteLedger(SITE, SITE.cap_w, (), {"s19": s19, "s21": s21})


def run(gpus, job_id="t1"):
    return AiClaim(job_id, JobKind.TRAINING, 0, 1, gpus)


def test_a_run_that_fits_starts_at_once():
    ledger = SiteLedger(SITE, SITE.cap_w, (), {"s19": SITE.fleets[0].standby_w, "s21": SITE.fleets[1].standby_w})
    assert admit(ledger, run(100)).start_now


def test_a_run_needing_mining_power_waits_until_the_agent_confirms():
    ledger = mining_fills_the_rest()
    admission = admit(ledger, run(1000))
    assert not admission.start_now
    assert set(admission.mining_targets_w) == {"s19"}  # least efficient first, only as much as needed
    assert admission.reason.startswith("waiting for mining to come down")
    # Targets sent, but the miners still draw their old power: still no start.
    ramping = confirm_mining(ledger, dict(ledger.mining_w), admission.mining_targets_w)
    assert not admit(ramping, run(1000)).start_now
    # The agent reports the fleets at their new targets: now it starts, under the cap.
    confirmed = confirm_mining(ledger, admission.mining_targets_w, admission.mining_targets_w)
    assert admit(confirmed, run(1000)).start_now


def test_a_run_that_cannot_fit_even_with_mining_paused_is_refused():
    admission = admit(mining_fills_the_rest(), run(10000))
    assert not admission.start_now and admission.mining_targets_w == {} and "MW short" in admission.reason


@settings(max_examples=300, deadline=None)
@given(gpus=st.lists(st.integers(1, 1500), min_size=1, max_size=6), ramp_steps=st.integers(1, 5))
def test_cap_holds_through_every_transition(gpus, ramp_steps):
    """Runs arrive one by one; mining ramps down in steps; nothing ever exceeds the cap."""
    ledger = mining_fills_the_rest()
    for i, n in enumerate(gpus):
        claim = run(n, f"t{i}")
        admission = admit(ledger, claim)
        if admission.start_now:
            ledger = SiteLedger(SITE, SITE.cap_w, (*ledger.ai, claim), ledger.mining_w)
        elif admission.mining_targets_w:
            before = dict(ledger.mining_w)
            for step in range(1, ramp_steps + 1):  # measured power walks down to the target
                measured = {f: before[f] + (t - before[f]) * step / ramp_steps for f, t in admission.mining_targets_w.items()}
                ledger = confirm_mining(ledger, measured, admission.mining_targets_w)
                assert ledger.within_cap
                if admit(ledger, claim).start_now:
                    ledger = SiteLedger(SITE, SITE.cap_w, (*ledger.ai, claim), ledger.mining_w)
                    break
        assert ledger.within_cap
