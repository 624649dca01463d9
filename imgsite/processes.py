"""Child processes and ports: start and stop process groups, wait for a port to listen."""
import os
import signal
import socket
import subprocess
import time


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(host, port, timeout=30.0, process=None):
    """Wait until something listens on host:port; fail early if `process` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before listening on {port}")
        if port_in_use(port, host):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def start_process(argv, env=None, log_path=None):
    """Start a child in its own process group, so that stopping it stops its children too."""
    output = open(log_path, "ab") if log_path else subprocess.DEVNULL
    return subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(process, timeout=20.0):
    """SIGTERM the child's process group, then SIGKILL it if it is still there after `timeout`."""
    if process.poll() is not None:
        return process.returncode
    os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()
