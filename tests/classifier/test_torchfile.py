"""The restricted reader of legacy torch checkpoints."""
import io
import os
import pickle

import numpy as np
import pytest

from classifier import efficientnet
from classifier.torchfile import (
    MAGIC_NUMBER,
    PROTOCOL_VERSION,
    UnsafeCheckpoint,
    load_state_dict,
    read_state_dict,
)


def legacy_header():
    sys_info = {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return b"".join(pickle.dumps(value, protocol=2) for value in (MAGIC_NUMBER, PROTOCOL_VERSION, sys_info))


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_it_reads_the_wheel_checkpoint():
    state = load_state_dict(efficientnet.weights_file())
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_fc.weight"].dtype == np.float32
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert all(np.isfinite(array).all() for array in state.values())
    assert (state["_bn1.running_var"] > 0).all()


def test_it_refuses_a_pickle_that_references_os_system(tmp_path):
    marker = tmp_path / "pwned"
    payload = legacy_header() + pickle.dumps({"weight": RunsACommand(marker)}, protocol=2)
    with pytest.raises(UnsafeCheckpoint, match=r"(os|posix)\.system.*not in the allow-list"):
        read_state_dict(io.BytesIO(payload))
    assert not marker.exists()


def test_it_refuses_a_global_even_in_the_header():
    payload = pickle.dumps(RunsACommand("/tmp/never"), protocol=2)
    with pytest.raises(UnsafeCheckpoint, match="not in the allow-list"):
        read_state_dict(io.BytesIO(payload))


def test_it_refuses_a_file_that_is_not_a_torch_checkpoint():
    with pytest.raises(UnsafeCheckpoint, match="bad magic number"):
        read_state_dict(io.BytesIO(pickle.dumps(42, protocol=2)))
