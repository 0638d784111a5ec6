"""A real IMAP server for tests: Debian's Dovecot, unprivileged parts, on a free high port.

The whole configuration lives in a temporary folder (`-c` replaces /etc/dovecot). Run as
root (CI), Dovecot's own `dovecot`/`dovenull` users run the login and auth processes and the
mailbox belongs to `nobody`, as Dovecot refuses mail processes of uid 0; run as another user,
everything runs as that user. Tests that need it skip, saying why, when Dovecot is missing.
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.certs import KeyPair, make_cert

USER, PASSWORD = "bounces", "imap-test-password"


@dataclass
class ImapServer:
    host: str
    port: int
    ca: KeyPair
    folder: Path

    @property
    def url(self) -> str:
        return f"imaps://{USER}@{self.host}:{self.port}/INBOX"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(folder: Path, port: int, cert: KeyPair) -> str:
    if os.geteuid() == 0:
        internal, login = "dovecot", "dovenull"
        mail_user = pwd.getpwnam("nobody")
    else:
        me = pwd.getpwuid(os.geteuid())
        internal = login = me.pw_name
        mail_user = me
    mail = folder / "mail"
    mail.mkdir(mode=0o700)
    os.chown(mail, mail_user.pw_uid, mail_user.pw_gid)
    (folder / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    for path in (cert.cert_file, cert.key_file, folder / "passwd"):
        path.chmod(0o644 if path.suffix != ".key" else 0o640)
    return f"""
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert.cert_file}
ssl_key = <{cert.key_file}
disable_plaintext_auth = yes
auth_mechanisms = plain
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = {min(mail_user.pw_uid, 100)}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={mail}/%u
}}
mail_location = maildir:{mail}/%u/Maildir
namespace inbox {{
  inbox = yes
  mailbox Processed {{
    auto = create
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service auth {{
  unix_listener auth-userdb {{
    mode = 0666
  }}
}}
"""


@pytest.fixture
def imap_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ImapServer]:
    binary = shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
    )
    if binary is None:
        pytest.skip("Dovecot is not installed (Debian package dovecot-imapd; see .ci/run)")
    # Not under tmp_path: pytest keeps its folders 0700, out of reach of Dovecot's own users.
    folder = Path(tempfile.mkdtemp(prefix="diffusion-dovecot-"))
    folder.chmod(0o755)
    ca = make_cert(folder / "tls", "localhost")
    port = _free_port()
    config = folder / "dovecot.conf"
    config.write_text(_config(folder, port, ca))
    process = subprocess.Popen(
        [binary, "-F", "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                log = (
                    (folder / "dovecot.log").read_text()
                    if (folder / "dovecot.log").exists()
                    else ""
                )
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"Dovecot did not start: {output} {log}")
            time.sleep(0.1)
    # Python's TLS trusts the throw-away certificate through OpenSSL's variable.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert_file))
    try:
        yield ImapServer("127.0.0.1", port, ca, folder)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(folder, ignore_errors=True)
