"""Start and stop `streamlit run app.py` on a free loopback port (browser tests, bench)."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A camera for st.camera_input without one: chromium's moving test picture, the permission granted without a prompt.
FAKE_CAMERA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    script: str = "app.py",
    tls: tuple[Path, Path] | None = None,
) -> Iterator[str]:
    """Yield the base URL of a fresh app server; stop it afterwards."""
    with streamlit_process(env, log_path, script, tls) as (url, _proc):
        yield url


@contextmanager
def streamlit_process(
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    script: str = "app.py",
    tls: tuple[Path, Path] | None = None,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Yield (base URL, server process) of a fresh app server; stop it afterwards.

    script: "app.py", or "classroom.py" for the class server; tls: (certificate, key) files to serve HTTPS.
    """
    port = free_port()
    https = ["--server.sslCertFile", str(tls[0]), "--server.sslKeyFile", str(tls[1])] if tls else []
    # The server keeps its own copy of the log file's descriptor: this process closes its copy once started.
    with open(log_path, "w") if log_path else contextlib.nullcontext(subprocess.DEVNULL) as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                script,
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
                "--server.fileWatcherType",
                "none",
                *https,
            ],
            cwd=ROOT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    # The test's own self-signed certificate: the health check trusts it (browsers are told to, too).
    unverified = ssl._create_unverified_context() if tls else None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2, context=unverified) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start (exit code {proc.poll()}); see {log_path}")
            time.sleep(0.2)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
