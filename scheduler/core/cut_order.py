"""Which tenants' training gives way first when a cap cut forces training off.

The ladder (core/ladder.py) power-caps and then preempts training in its own order
(lowest priority, newest first); with contracts, each run's *cut rank* comes first: the
first kind of `TenancyPolicy.cut_order` it is (core/contracts.py `cut_rank`: by default a
run of an interruptible-class contract, then a borrowed run, then a firm one). Mining
still gives way before any training and inference after it: the ranks only reorder
training among itself.

`cut_ranks` builds the function the power state asks (`PowerState.give_way`) for a site's
training runs' ranks, reading the policy, the sites' regions and power profiles each time
it is asked (so a reload of the policy takes effect at the next dispatch pass). Pure: it
reads jobs and profiles, keeps nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from scheduler.core.contracts import Book, TenancyPolicy, contract_figures, cut_rank
from scheduler.core.job_table import JobTable
from scheduler.core.jobs import JobKind
from scheduler.core.placement import SiteCapacity
from scheduler.core.power_state import SitePowerState


def cut_ranks(
    policy: Callable[[], TenancyPolicy | None], regions: Callable[[], Mapping[str, str]], profiles: Mapping[str, SitePowerState]
) -> Callable[[str, JobTable], dict[str, int]]:
    """site id, jobs -> {job id: cut rank} of the training on that site ({} without contracts)."""

    def ranks(site_id: str, jobs: JobTable) -> dict[str, int]:
        tenancy = policy()
        where = regions()
        region = where.get(site_id)
        if tenancy is None or not tenancy.contracts or region is None:
            return {}
        training = [j for j in jobs.on_site(site_id) if j.spec.kind == JobKind.TRAINING]
        if not training:
            return {}
        sites = []
        for other, its_region in where.items():
            if its_region == region:
                power = profiles[other].power if other in profiles else None
                sites.append(SiteCapacity(other, region, power.gpus if power else 0, 0, **(contract_figures(power) if power else {})))
        book = Book(tenancy, sites, (j for s in sites for j in jobs.on_site(s.site_id)))
        return {j.job_id: cut_rank(tenancy, book, j, region) for j in training}

    return ranks


__all__ = ["cut_ranks"]
