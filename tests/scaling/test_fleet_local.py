"""The local fleet: state-file adoption after a restart, retiring by SIGTERM, the drain timeout.

The nodes here are cheap stand-in processes (worker_argv is monkeypatched to a `python -c`
sleeper), not Celery workers: this tests the fleet's bookkeeping and signals. The real
worker path is covered end to end elsewhere.
"""
import os
import signal
import sys

import pytest

from scaling.fleets import BOOTING, DRAINING, RUNNING
from scaling.fleets import local as local_fleet
from scaling.fleets.local import LocalFleet, process_alive
from scaling.models import WorkerNode
from tests.conftest import wait_until

# Exits on SIGTERM, like a worker's warm shutdown with no task running.
OBEDIENT = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); time.sleep(120)"
# Ignores SIGTERM, like a worker stuck in a task.
HUNG = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"


@pytest.fixture
def stand_in(monkeypatch):
    """Choose the stand-in program that launched nodes run."""
    def use(program):
        monkeypatch.setattr(local_fleet, "worker_argv", lambda node, pool="threads": [sys.executable, "-c", program])
    use(OBEDIENT)
    return use


@pytest.fixture
def state_file(tmp_path, db):
    path = tmp_path / "local-fleet.json"
    yield path
    for info in LocalFleet(state_file=path).load().values():
        LocalFleet.signal(info["pid"], signal.SIGKILL)


def pid_of(fleet, name):
    return fleet.load()[name]["pid"]


def ignores_sigterm(pid):
    """True once the process has set SIGTERM to be ignored (its SigIgn mask in /proc)."""
    with open(f"/proc/{pid}/status") as status:
        mask = next(line.split()[1] for line in status if line.startswith("SigIgn:"))
    return bool(int(mask, 16) & (1 << (signal.SIGTERM - 1)))


def test_a_restarted_fleet_adopts_the_running_workers(stand_in, state_file):
    first = LocalFleet(state_file=state_file)
    launched = first.launch(2)
    WorkerNode.report_started(launched[0])

    restarted = LocalFleet(state_file=state_file)

    assert launched == ["local-1", "local-2"]
    assert [(node.id, node.state) for node in restarted.list()] == [("local-1", RUNNING), ("local-2", BOOTING)]
    assert restarted.launch(1) == ["local-3"]  # names go on from the adopted ones


def test_a_worker_that_died_is_forgotten(stand_in, state_file):
    fleet = LocalFleet(state_file=state_file)
    fleet.launch(2)
    os.killpg(pid_of(fleet, "local-1"), signal.SIGKILL)

    wait_until(lambda: [node.id for node in LocalFleet(state_file=state_file).list()] == ["local-2"],
               timeout=10, message="the dead worker to drop out")
    assert list(fleet.load()) == ["local-2"]


def test_retire_sends_sigterm_and_the_node_goes(stand_in, state_file):
    fleet = LocalFleet(state_file=state_file)
    fleet.launch(2)

    assert fleet.retire(["local-1", "local-9"]) == ["local-1"]

    assert {node.id: node.state for node in fleet.list()}.get("local-1", DRAINING) == DRAINING
    wait_until(lambda: [node.id for node in fleet.list()] == ["local-2"], timeout=10,
               message="the retired worker to exit")


def test_a_worker_that_ignores_sigterm_is_killed_after_the_drain_timeout(stand_in, state_file, settings):
    stand_in(HUNG)
    settings.AUTOSCALE_DRAIN_TIMEOUT = 3600
    fleet = LocalFleet(state_file=state_file)
    fleet.launch(1)
    pid = pid_of(fleet, "local-1")
    wait_until(lambda: ignores_sigterm(pid), timeout=10, message="the stand-in to ignore SIGTERM")
    fleet.retire(["local-1"])
    fleet.retire(["local-1"])  # again, within the timeout: still draining

    [node] = fleet.list()
    assert node.state == DRAINING and process_alive(pid)

    settings.AUTOSCALE_DRAIN_TIMEOUT = 0
    fleet.retire(["local-1"])

    wait_until(lambda: fleet.list() == [], timeout=10, message="the hung worker to be killed")
