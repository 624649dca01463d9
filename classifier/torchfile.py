"""Read a legacy (pre-zip) PyTorch checkpoint into numpy arrays, without torch.

The legacy format is a run of pickles: magic number, protocol version, system
info, the state dict (tensors refer to storages by persistent id), the list of
storage keys, then each storage as an 8-byte little-endian element count
followed by its raw little-endian data. Only the globals such a state dict
needs are allowed; anything else (``os.system``...) is refused.
"""
import collections
import pickle
import struct
from dataclasses import dataclass

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ByteStorage": np.dtype("u1"),
}


class UnsafeCheckpoint(pickle.UnpicklingError):
    """The checkpoint references a global outside the allow-list, or is malformed."""


@dataclass(frozen=True)
class StorageType:
    name: str

    @property
    def dtype(self):
        return STORAGE_DTYPES[self.name]


@dataclass(frozen=True)
class StorageRef:
    key: str
    dtype: np.dtype
    numel: int


@dataclass(frozen=True)
class TensorRef:
    """A tensor whose storage has not been read yet."""

    storage: StorageRef
    offset: int
    shape: tuple
    stride: tuple


def rebuild_tensor(storage, offset, shape, stride, requires_grad=False, hooks=None, metadata=None):
    """Stand-in for torch._utils._rebuild_tensor_v2: remember where the data lives."""
    return TensorRef(storage, offset, tuple(shape), tuple(stride))


def allowed_globals():
    allowed = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
    }
    for name in STORAGE_DTYPES:
        allowed[("torch", name)] = StorageType(name)
    return allowed


class CheckpointUnpickler(pickle.Unpickler):
    """An unpickler that only resolves the globals a plain state dict needs."""

    ALLOWED = allowed_globals()

    def __init__(self, file):
        super().__init__(file)
        self.storages = {}

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeCheckpoint(
                f"checkpoint references {module}.{name}, which is not in the allow-list; refusing to load it"
            ) from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise UnsafeCheckpoint(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, StorageType) or view_metadata is not None:
            raise UnsafeCheckpoint(f"unsupported storage {pid!r}")
        storage = self.storages.setdefault(key, StorageRef(key, storage_type.dtype, numel))
        return storage


def read_storage(file, storage):
    """Read one storage: its element count, then its raw data."""
    (numel,) = struct.unpack("<q", file.read(8))
    if numel != storage.numel:
        raise UnsafeCheckpoint(f"storage {storage.key} holds {numel} elements, expected {storage.numel}")
    nbytes = numel * storage.dtype.itemsize
    data = file.read(nbytes)
    if len(data) != nbytes:
        raise UnsafeCheckpoint(f"storage {storage.key} is truncated")
    return np.frombuffer(data, dtype=storage.dtype)


def materialise(tensor, storages):
    """Turn a TensorRef into a native-endian numpy array of its own."""
    flat = storages[tensor.storage.key]
    itemsize = flat.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        flat[tensor.offset:],
        shape=tensor.shape,
        strides=tuple(s * itemsize for s in tensor.stride),
        writeable=False,
    )
    return np.array(view, dtype=flat.dtype.newbyteorder("="))


def check_header(file):
    """Read the magic number, protocol version and system info pickles."""
    if CheckpointUnpickler(file).load() != MAGIC_NUMBER:
        raise UnsafeCheckpoint("not a legacy PyTorch checkpoint (bad magic number)")
    if CheckpointUnpickler(file).load() != PROTOCOL_VERSION:
        raise UnsafeCheckpoint("unsupported legacy PyTorch protocol version")
    sys_info = CheckpointUnpickler(file).load()
    if not sys_info.get("little_endian", False):
        raise UnsafeCheckpoint("big-endian checkpoints are not supported")


def read_state_dict(file):
    """Read a legacy torch checkpoint (a binary file object) into {name: ndarray}."""
    check_header(file)
    unpickler = CheckpointUnpickler(file)
    state = unpickler.load()
    storage_keys = CheckpointUnpickler(file).load()
    storages = {key: read_storage(file, unpickler.storages[key]) for key in storage_keys}
    return collections.OrderedDict((name, materialise(tensor, storages)) for name, tensor in state.items())


def load_state_dict(path):
    """Read the legacy torch checkpoint at ``path`` into {name: ndarray}."""
    with open(path, "rb") as file:
        return read_state_dict(file)
