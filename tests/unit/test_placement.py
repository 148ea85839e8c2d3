"""Placement: gangs on one site, regions, priority then FCFS, best fit, reasons."""

import dataclasses
import re

from scheduler.core.placement import place
from tests.builders import a_job, a_site


def test_a_gang_goes_whole_to_one_site_or_waits():
    job = a_job().training(gpus=8).build()
    result = place([job], [a_site("us-1", gpus=4), a_site("us-2", gpus=4)])
    assert result.assignments == ()
    assert result.pending_reasons[job.job_id] == "no site in any region has 8 GPUs in all (largest has 4)"


def test_inference_needs_replicas_times_gpus_on_one_site():
    job = a_job().inference(replicas=3, gpus=2).build()
    assert place([job], [a_site("us-1", gpus=4)]).assignments == ()
    assert place([job], [a_site("us-1", gpus=6)]).assignments == ((job.job_id, "us-1"),)


def test_a_job_never_leaves_its_regions():
    job = a_job().training(gpus=8).in_regions("eu").build()
    result = place([job], [a_site("us-1", "us", gpus=64), a_site("eu-1", "eu", gpus=8, used=4)])
    assert result.assignments == ()
    assert result.pending_reasons[job.job_id] == "no site in region eu has 8 free GPUs (eu-1: 4 of 8 free)"


def test_unknown_region_has_no_site():
    job = a_job().in_regions("ap").build()
    assert place([job], [a_site("us-1")]).pending_reasons[job.job_id] == "no site in region ap"


def test_priority_first_then_first_come_first_served():
    late_high = a_job().training(gpus=4).priority(10).seq_no(30).build()
    early_low = a_job().training(gpus=4).priority(0).seq_no(10).build()
    later_low = a_job().training(gpus=4).priority(0).seq_no(20).build()
    result = place([later_low, early_low, late_high], [a_site("us-1", gpus=8)])
    assert [job_id for job_id, _ in result.assignments] == [late_high.job_id, early_low.job_id]
    assert later_low.job_id in result.pending_reasons


def test_best_fit_keeps_the_big_hole_for_the_big_gang():
    small = a_job().training(gpus=2).seq_no(1).build()
    big = a_job().training(gpus=8).seq_no(2).build()
    result = place([small, big], [a_site("a", gpus=8), a_site("b", gpus=4)])
    assert dict(result.assignments) == {small.job_id: "b", big.job_id: "a"}


def test_a_blocked_big_job_does_not_block_smaller_ones_behind_it():
    big = a_job().training(gpus=16).seq_no(1).build()
    small = a_job().training(gpus=2).seq_no(2).build()
    result = place([big, small], [a_site("a", gpus=8)])
    assert result.assignments == ((small.job_id, "a"),)
    assert big.job_id in result.pending_reasons


def test_drained_and_disconnected_sites_take_no_work_and_say_so():
    job = a_job().training(gpus=2).build()
    sites = [a_site("a", accepts_work=False, why="drained (maintenance)"), a_site("b", accepts_work=False, why="disconnected")]
    result = place([job], sites)
    assert result.assignments == ()
    assert result.pending_reasons[job.job_id] == "no site in any region has 2 free GPUs (a: drained (maintenance); b: disconnected)"


def test_placements_in_one_pass_never_oversubscribe_a_site():
    jobs = [a_job().training(gpus=3).seq_no(i).build() for i in range(5)]
    result = place(jobs, [a_site("a", gpus=8, used=1)])
    assert len(result.assignments) == 2  # 7 free: two gangs of 3
    assert len(result.pending_reasons) == 3


def test_power_is_a_second_resource_and_the_reason_says_so():
    job = a_job().training(gpus=8).build()
    short = a_site("tx", gpus=64, power_free_w=5e6, power_per_gpu_w=1e6)
    result = place([job], [short])
    assert result.assignments == ()
    assert result.pending_reasons[job.job_id] == "no site in any region has power for 8 GPUs (tx: 5.00 MW free, needs 8.00 MW)"
    assert place([job], [dataclasses.replace(short, power_free_w=8e6)]).assignments == ((job.job_id, "tx"),)


def test_placement_prefers_the_site_where_power_is_worth_least_to_mining():
    job = a_job().training(gpus=4).build()
    rich = a_site("oh", gpus=8, mining_value_usd_per_mwh=40.0)
    cheap = a_site("tx", gpus=64, mining_value_usd_per_mwh=-10.0)
    assert place([job], [rich, cheap]).assignments == ((job.job_id, "tx"),)


def test_power_taken_by_one_placement_is_not_given_twice():
    jobs = [a_job().training(gpus=4).seq_no(i).build() for i in range(3)]
    site = a_site("tx", gpus=64, power_free_w=9e6, power_per_gpu_w=1e6)
    assert len(place(jobs, [site]).assignments) == 2


def test_a_long_queue_gets_the_same_reasons_as_one_job_looked_at_alone():
    """Jobs of one shape that fit nowhere share one look per pass; each still gets the
    reason it would get alone, with the figures as they stand after earlier placements."""
    site = a_site("a", gpus=8)
    queue = [a_job().training(gpus=g).seq_no(i).build() for i, g in enumerate([6, 6, 6, 2, 6, 4, 6], start=1)]
    result = place(queue, [site])
    assert result.assignments == ((queue[0].job_id, "a"), (queue[3].job_id, "a"))
    used = 0
    for job in queue:  # in queue order: what the earlier placements left when it was looked at
        if job.job_id in dict(result.assignments):
            used += job.spec.total_gpus
            continue
        alone = place([job], [dataclasses.replace(site, gpus_used=used)])
        # Alone it has no one ahead; in the queue its reason starts with how many are.
        assert re.sub(r"^\d+ jobs? ahead; ", "", result.pending_reasons[job.job_id]) == alone.pending_reasons[job.job_id], job
