"""The lab's BMCs: one sushy-tools Redfish emulator process per server.

Each listens on 127.0.0.1 with HTTPS (a certificate for 127.0.0.1 signed by the lab's own CA,
so clients verify TLS instead of switching it off), asks for HTTP basic auth (bcrypt htpasswd
of a generated password, kept in a 0600 file), and may see only its own libvirt domain
(``SUSHY_EMULATOR_ALLOWED_INSTANCES``). Virtual media it downloads goes into the lab's own
libvirt storage pool and temporary directory, so ``lab down`` finds and removes it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

from provision.lab.daemons import URI, LabError
from provision.lab.domain import OVMF_CODE, OVMF_VARS
from provision.state import write_private

USER = "admin"


@dataclass(frozen=True)
class Tls:
    ca: Path
    cert: Path
    key: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tls(directory: Path) -> Tls:
    """A lab CA and a 127.0.0.1 server certificate it signs (openssl; kept for the lab)."""
    tls = Tls(directory / "ca.crt", directory / "bmc.crt", directory / "bmc.key")
    if all(p.exists() for p in (tls.ca, tls.cert, tls.key)):
        return tls
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_key = directory / "ca.key"
    ext = directory / "bmc.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
                   "basicConstraints=CA:FALSE\n")
    steps = [
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
         "-subj", "/CN=provision lab BMC CA", "-keyout", str(ca_key), "-out", str(tls.ca)],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", str(tls.key), "-out", str(directory / "bmc.csr")],
        ["openssl", "x509", "-req", "-in", str(directory / "bmc.csr"), "-CA", str(tls.ca),
         "-CAkey", str(ca_key), "-CAcreateserial", "-days", "30", "-extfile", str(ext),
         "-out", str(tls.cert)],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise LabError(f"openssl failed making the lab's TLS files: {proc.stderr[-300:]}")
    for p in (ca_key, tls.key):
        p.chmod(0o600)
    return tls


def make_credentials(directory: Path) -> Path:
    """The BMC password (0600 file) and its bcrypt htpasswd; returns the password file."""
    import bcrypt

    password_file = directory / "bmc-password"
    if not password_file.exists():
        write_private(password_file, secrets.token_urlsafe(18) + "\n")
    password = password_file.read_text().strip()
    digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
    write_private(directory / "htpasswd", f"{USER}:{digest}\n")
    return password_file


def config_text(*, port: int, tls: Tls, htpasswd: Path, uuid: str, pool: str,
                state_dir: Path) -> str:
    values = {
        "SUSHY_EMULATOR_LISTEN_IP": "127.0.0.1",
        "SUSHY_EMULATOR_LISTEN_PORT": port,
        "SUSHY_EMULATOR_SSL_CERT": str(tls.cert),
        "SUSHY_EMULATOR_SSL_KEY": str(tls.key),
        "SUSHY_EMULATOR_AUTH_FILE": str(htpasswd),
        "SUSHY_EMULATOR_LIBVIRT_URI": URI,
        "SUSHY_EMULATOR_ALLOWED_INSTANCES": [uuid],
        "SUSHY_EMULATOR_BOOT_LOADER_MAP": {"UEFI": {"x86_64": OVMF_CODE},
                                           "Legacy": {"x86_64": None}},
        "SUSHY_EMULATOR_SECURE_BOOT_DISABLED_NVRAM": OVMF_VARS,
        "SUSHY_EMULATOR_STORAGE_POOL": pool,
        "SUSHY_EMULATOR_STATE_DIR": str(state_dir),
        "SUSHY_EMULATOR_FEATURE_SET": "full",
    }
    return "".join(f"{k} = {v!r}\n" for k, v in values.items())


def start(config: Path, log: Path, tmpdir: Path) -> int:
    """Start one emulator in its own session; returns its pid."""
    tmpdir.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).parent / "sushy-emulator"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sushy_tools.emulator.main"]
    with open(log, "ab") as out:
        proc = subprocess.Popen([*cmd, "--config", str(config)], stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "TMPDIR": str(tmpdir)})
    return proc.pid


def wait_ready(port: int, tls: Tls, password: str, pid: int, timeout: float = 60.0) -> None:
    """Until the emulator answers GET /redfish/v1/Systems with auth over verified TLS."""
    ctx = ssl.create_default_context(cafile=str(tls.ca))
    auth = b64encode(f"{USER}:{password}".encode()).decode()
    req = urllib.request.Request(f"https://127.0.0.1:{port}/redfish/v1/Systems",
                                 headers={"Authorization": f"Basic {auth}"})
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not alive(pid):
            raise LabError(f"the BMC emulator on port {port} exited (see its log)")
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=5) as rsp:
                if rsp.status == 200:
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise LabError(f"the BMC emulator on port {port} did not answer within {timeout:.0f} s "
                   f"({last})")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            return False
    return True


def is_emulator(pid: int, config: Path) -> bool:
    """The pid is still our emulator (not a recycled pid of something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(config).encode() in cmdline


def stop(pid: int, config: Path, timeout: float = 10.0) -> bool:
    """Stop our emulator process group; True when it is gone."""
    if not alive(pid) or not is_emulator(pid, config):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not alive(pid):
            return True
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    time.sleep(0.5)
    return not alive(pid)
