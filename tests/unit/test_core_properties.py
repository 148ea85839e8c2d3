"""Property test: random sequences of submissions, scheduling passes, agent reports,
reconnects, lost sites and cancels never break the core's invariants:
- every state change goes through the transition table (transition() raises otherwise);
- no site ever has more GPUs committed than it has;
- every active job has exactly one current run on one site;
- a job, once terminal, never changes again;
- the fence: a start is never ordered for a run of a job while another run of that job
  may be alive, except on another site after that run's site was declared lost.
"""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from scheduler.core import runs
from scheduler.core.jobs import ACTIVE, TERMINAL, JobKind, JobSpec, JobState, Resources, new_job
from scheduler.core.placement import SiteCapacity, place

SITES = {"us-1": ("us", 8), "us-2": ("us", 4), "eu-1": ("eu", 8)}
REPORTABLE = [runs.RunState.STARTING, runs.RunState.RUNNING, runs.RunState.SUCCEEDED, runs.RunState.FAILED, runs.RunState.STOPPED, runs.RunState.UNKNOWN]


class CoreMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.jobs = {}
        self.now = 0.0
        self.seq = 0
        self.finished = {}
        self.alive = {}  # job_id -> {(site, run_id): released by a lost site?} runs a start was ordered for, not seen ended

    def apply(self, decision):
        for job in decision.jobs:
            self.jobs[job.job_id] = job
        for order in decision.orders:
            if isinstance(order, runs.StartRun):
                others = {k: lost for k, lost in self.alive.get(order.job_id, {}).items() if k[1] != order.run_id}
                assert all(lost and site != order.site_id for (site, _), lost in others.items()), (order, others)
                self.alive.setdefault(order.job_id, {})[(order.site_id, order.run_id)] = False

    def ended(self, site, run_id):
        job_id = run_id.rsplit("-r", 1)[0]
        self.alive.get(job_id, {}).pop((site, run_id), None)

    @rule(gpus=st.integers(1, 10), regions=st.sampled_from([(), ("us",), ("eu",)]), priority=st.integers(-2, 2), retries=st.integers(0, 2))
    def submit(self, gpus, regions, priority, retries):
        self.seq += 1
        spec = JobSpec(kind=JobKind.TRAINING, entrypoint="x", resources=Resources(gpus=gpus), allowed_regions=regions, priority=priority, max_retries=retries)
        job, _ = new_job(f"job-{self.seq}", "t", f"r{self.seq}", spec, self.seq, self.now)
        self.jobs[job.job_id] = job

    @rule(down=st.sets(st.sampled_from(sorted(SITES))))
    def schedule_pass(self, down):
        used = self.used()
        capacities = [SiteCapacity(s, r, g, used.get(s, 0), accepts_work=s not in down) for s, (r, g) in SITES.items()]
        placement = place(self.jobs.values(), capacities)
        self.now += 1
        self.apply(runs.schedule(placement.assignments, placement.pending_reasons, self.jobs, self.now))

    @rule(data=st.data())
    def agent_reports(self, data):
        active = [j for j in self.jobs.values() if j.state in ACTIVE]
        if not active:
            return
        job = data.draw(st.sampled_from(sorted(active, key=lambda j: j.seq)))
        state = data.draw(st.sampled_from(REPORTABLE))
        self.now += 1
        if state not in runs.RUN_ACTIVE:
            self.ended(job.site_id, job.run_id)
        self.apply(runs.on_run_report(job, job.site_id, runs.RunReport(job.run_id, state, "m"), self.now))

    @rule(site=st.sampled_from(sorted(SITES)), data=st.data())
    def agent_reconnects(self, site, data):
        on_site = [j for j in self.jobs.values() if j.site_id == site and j.state in ACTIVE]
        kept = data.draw(st.lists(st.sampled_from(on_site), unique_by=lambda j: j.job_id)) if on_site else []
        reported = {j.run_id: runs.RunReport(j.run_id, runs.RunState.RUNNING) for j in kept}
        for runs_of_job in self.alive.values():  # what the agent does not list has ended
            for key in [k for k in runs_of_job if k[0] == site and k[1] not in reported]:
                del runs_of_job[key]
        self.now += 1
        self.apply(runs.on_register(site, on_site, reported, self.jobs, self.now))

    @rule(site=st.sampled_from(sorted(SITES)))
    def site_lost(self, site):
        self.now += 31
        for runs_of_job in self.alive.values():
            for key in [k for k in runs_of_job if k[0] == site]:
                runs_of_job[key] = True  # may still run there: only another site may start the job now
        self.apply(runs.release_site(site, list(self.jobs.values()), 30, self.now))

    @rule(data=st.data())
    def tenant_cancels(self, data):
        open_jobs = [j for j in self.jobs.values() if j.state not in (JobState.SUCCEEDED, JobState.FAILED)]
        if open_jobs:
            job = data.draw(st.sampled_from(sorted(open_jobs, key=lambda j: j.seq)))
            self.apply(runs.cancel(job, "", self.now))

    def used(self):
        used = {}
        for job in self.jobs.values():
            if job.state in ACTIVE:
                used[job.site_id] = used.get(job.site_id, 0) + job.spec.total_gpus
        return used

    @invariant()
    def no_site_over_committed(self):
        for site, gpus in self.used().items():
            assert gpus <= SITES[site][1], (site, gpus)

    @invariant()
    def active_jobs_have_one_current_run(self):
        for job in self.jobs.values():
            if job.state in ACTIVE:
                assert job.site_id in SITES and job.attempt >= 1 and job.run_id == f"{job.job_id}-r{job.attempt}"

    @invariant()
    def terminal_jobs_stay_terminal(self):
        for job_id, job in self.jobs.items():
            if job_id in self.finished:
                assert job == self.finished[job_id]
            elif job.state in TERMINAL:
                self.finished[job_id] = job


TestCore = CoreMachine.TestCase
TestCore.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
