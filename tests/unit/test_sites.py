"""Site liveness: READY/DRAINED while the stream is up, DISCONNECTED within the
timeout, UNREACHABLE after it; a silent-but-open stream is overdue too."""

from scheduler.core.sites import GpuNode, Site, SiteState, is_overdue, site_state

SITE = Site("us-1", "us", (GpuNode("a", "H100", 8), GpuNode("b", "H100", 4)), connected=True, last_seen=100.0)


def test_inventory_adds_up():
    assert SITE.gpus_total == 12


def test_states_over_time():
    assert site_state(SITE, 105.0, 30) == SiteState.READY
    assert site_state(Site(**{**SITE.__dict__, "drained": True}), 105.0, 30) == SiteState.DRAINED
    gone = Site(**{**SITE.__dict__, "connected": False})
    assert site_state(gone, 130.0, 30) == SiteState.DISCONNECTED
    assert site_state(gone, 130.1, 30) == SiteState.UNREACHABLE
    assert site_state(Site(**{**gone.__dict__, "released": True}), 101.0, 30) == SiteState.UNREACHABLE


def test_overdue_once_silent_past_the_timeout_even_with_an_open_stream():
    assert not is_overdue(SITE, 130.0, 30)
    assert is_overdue(SITE, 130.1, 30)
    assert not is_overdue(Site(**{**SITE.__dict__, "released": True}), 500.0, 30)
