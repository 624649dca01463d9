"""The autoscaler's rows: the lease that lets one copy scale at a time, and folded ScalingEvents."""
from datetime import timedelta

import pytest
from django.utils import timezone

from scaling.models import Lease, ScalingEvent

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def test_the_first_copy_takes_the_lease_and_renews_it():
    assert Lease.claim("autoscaler", "a:1", NOW, 60) is None
    assert Lease.claim("autoscaler", "a:1", NOW + timedelta(seconds=30), 60) is None
    assert Lease.objects.get().expires_at == NOW + timedelta(seconds=90)


def test_a_second_copy_is_told_who_holds_it_until_it_expires():
    Lease.claim("autoscaler", "a:1", NOW, 60)
    held = Lease.claim("autoscaler", "b:2", NOW + timedelta(seconds=59), 60)
    assert held.holder == "a:1"
    assert Lease.claim("autoscaler", "b:2", NOW + timedelta(seconds=61), 60) is None
    assert Lease.objects.get().holder == "b:2"
    assert Lease.claim("autoscaler", "a:1", NOW + timedelta(seconds=62), 60).holder == "b:2"


def test_a_released_lease_is_free_at_once():
    Lease.claim("autoscaler", "a:1", NOW, 60)
    Lease.release("autoscaler", "b:2")  # not the holder: nothing happens
    assert Lease.claim("autoscaler", "b:2", NOW, 60).holder == "a:1"
    Lease.release("autoscaler", "a:1")
    assert Lease.claim("autoscaler", "b:2", NOW, 60) is None


def event(**fields):
    return ScalingEvent(**{"created_at": NOW, "backend": "local", "reading": {"visible": 0}, "target": 0,
                           "reason": "holding 0", "action": "nothing", **fields})


def test_only_an_identical_pass_that_did_nothing_is_folded():
    saved = event()
    saved.save()
    assert saved.same_as(event(created_at=NOW + timedelta(seconds=15)))
    assert not saved.same_as(event(reading={"visible": 1}))
    assert not saved.same_as(event(target=1))
    assert not saved.same_as(event(dry_run=True))
    assert not saved.same_as(event(error="boom"))
    launched = event(action="launch 1")
    launched.save()
    assert not launched.same_as(event(action="launch 1"))


def test_folding_counts_the_pass_and_when_it_was_seen():
    saved = event()
    saved.save()
    saved.fold(NOW + timedelta(seconds=15))
    saved.fold(NOW + timedelta(seconds=30))
    saved.refresh_from_db()
    assert saved.repeats == 3 and saved.last_seen_at == NOW + timedelta(seconds=30)


def test_the_history_leaves_out_dry_runs_and_failures():
    kept = event()
    kept.save()
    event(dry_run=True).save()
    event(error="boom").save()
    event(created_at=NOW - timedelta(hours=1)).save()
    assert list(ScalingEvent.objects.history(NOW - timedelta(minutes=10))) == [kept]
