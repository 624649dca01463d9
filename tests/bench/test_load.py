"""The load test program, run small: every accepted image finishes, none is lost, no 5xx."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_a_small_load_loses_nothing_and_answers_no_5xx(tmp_path):
    # Its own process: the load test configures Django for the stack it starts.
    code = ("import json, sys; sys.path.insert(0, 'bench'); from load import run_load; "
            "print(json.dumps(run_load(clients=3, images_per_client=8, per_request=4, timeout=180)))")
    output = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert output.returncode == 0, output.stderr[-3000:]
    result = json.loads(output.stdout.strip().splitlines()[-1])

    assert result["accepted"] == result["sent"] == 24
    assert result["done"] == 24 and result["failed"] == 0 and result["lost"] == 0
    assert result["http_5xx"] == 0 and result["http_other_errors"] == 0
    assert result["finished_in_time"]
