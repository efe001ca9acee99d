"""A real OpenLDAP server (Debian's ``slapd``) on loopback, for the directory sign-in tests and ``make run`` demos.

``Slapd`` writes a ``slapd.conf`` into a temporary directory, generates a CA and a server certificate for
127.0.0.1 with ``cryptography`` (StartTLS on the ``ldap://`` port, TLS on the ``ldaps://`` port), starts ``slapd -f``
in the foreground on two free loopback ports, and loads the entries with ``ldapadd``. Nothing is mocked: the
sign-in code talks LDAP to slapd as it would to a company directory.

Two directory shapes live side by side under ``dc=enreach,dc=test``:

- **OpenLDAP / classic**: ``ou=people`` holds ``inetOrgPerson`` entries (``uid``), ``ou=groups`` holds
  ``groupOfNames`` (``member``: DN). Users are locked administratively with the password policy overlay's
  ``pwdAccountLockedTime: 000001010000Z`` (slapd then refuses their bind, as a real server does).
- **Active Directory**: ``ou=corp`` holds AD ``user`` entries (``sAMAccountName``, ``userPrincipalName``,
  ``userAccountControl``, with AD's attribute OIDs) and AD ``group`` entries (``member``), with a
  group nested in another; a disabled account has the ``ACCOUNTDISABLE`` bit (2) of ``userAccountControl``.

``add``, ``modify`` and ``delete`` run ``ldapadd`` / ``ldapmodify`` / ``ldapdelete`` as the root DN, so a test
changes the directory exactly as an administrator would. ``stop()`` ends slapd (the directory is then down).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

SLAPD = "/usr/sbin/slapd"
MODULE_PATH = "/usr/lib/ldap"
SCHEMA_DIR = "/etc/ldap/schema"
BASE_DN = "dc=enreach,dc=test"
ROOT_DN = f"cn=admin,{BASE_DN}"
ROOT_PASSWORD = "slapd-root-secret-4f1c"
# The service account the app binds with to search users and groups (read-only by the ACL below).
BIND_DN = f"cn=enreach-search,ou=services,{BASE_DN}"
BIND_PASSWORD = "search-account-secret-9b2e"
LOCKED = "000001010000Z"  # pwdAccountLockedTime: locked by an administrator, for good
AD_DISABLED = 0x2  # userAccountControl ACCOUNTDISABLE
AD_NORMAL = 0x200  # userAccountControl NORMAL_ACCOUNT


@dataclass(frozen=True)
class Tls:
    """The generated CA (``ca_file``, PEM) and the server's key and certificate for 127.0.0.1 / localhost."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tls_generate(folder: Path) -> Tls:
    """A throwaway CA and a server certificate it signs, valid for 127.0.0.1 and localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Enreach test directory CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    tls = Tls(ca_file=folder / "ca.pem", cert_file=folder / "server.pem", key_file=folder / "server.key")
    tls.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    tls.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    tls.key_file.chmod(0o600)
    return tls


# Active Directory's user and group shape with AD's own OIDs and names (OpenLDAP's msuser.schema has them without
# matching rules, so its attributes cannot be searched): sAMAccountName, userPrincipalName, userAccountControl
# (searched with the bitwise rule 1.2.840.113556.1.4.803 as AD filters are), member on groups.
AD_SCHEMA = """attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
 EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
 SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName'
 EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl'
 EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.750 NAME 'groupType'
 EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user' SUP organizationalPerson STRUCTURAL
 MAY ( sAMAccountName $ userPrincipalName $ userAccountControl $ mail $ givenName $ displayName ) )
objectclass ( 1.2.840.113556.1.5.8 NAME 'group' SUP top STRUCTURAL
 MUST cn MAY ( member $ groupType $ sAMAccountName $ mail $ description ) )
"""


def _config(folder: Path, tls: Tls) -> str:
    (folder / "ad.schema").write_text(AD_SCHEMA)
    return f"""# Generated by devtools/ldap_server.py
include {SCHEMA_DIR}/core.schema
include {SCHEMA_DIR}/cosine.schema
include {SCHEMA_DIR}/inetorgperson.schema
include {SCHEMA_DIR}/nis.schema
include {folder}/ad.schema
pidfile {folder}/slapd.pid
argsfile {folder}/slapd.args
modulepath {MODULE_PATH}
moduleload back_mdb.la
moduleload ppolicy.la
TLSCACertificateFile {tls.ca_file}
TLSCertificateFile {tls.cert_file}
TLSCertificateKeyFile {tls.key_file}
loglevel none

database mdb
maxsize 67108864
suffix "{BASE_DN}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PASSWORD}
directory {folder}/data
index objectClass eq
overlay ppolicy
ppolicy_default "cn=default,ou=policies,{BASE_DN}"
ppolicy_use_lockout
access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to *
    by dn.exact="{BIND_DN}" read
    by self read
    by * none
"""


def _base_ldif() -> str:
    return f"""dn: {BASE_DN}
objectClass: dcObject
objectClass: organization
dc: enreach
o: Enreach test directory

dn: ou=people,{BASE_DN}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{BASE_DN}
objectClass: organizationalUnit
ou: groups

dn: ou=services,{BASE_DN}
objectClass: organizationalUnit
ou: services

dn: ou=policies,{BASE_DN}
objectClass: organizationalUnit
ou: policies

dn: ou=corp,{BASE_DN}
objectClass: organizationalUnit
ou: corp

dn: {BIND_DN}
objectClass: person
objectClass: simpleSecurityObject
cn: enreach-search
sn: search
userPassword: {BIND_PASSWORD}

dn: cn=default,ou=policies,{BASE_DN}
objectClass: pwdPolicy
objectClass: device
cn: default
pwdAttribute: userPassword
pwdLockout: TRUE
pwdMaxFailure: 0
"""


class Slapd:
    """slapd on loopback with a generated config, certificates and data. A context manager; ``stop()`` ends it."""

    def __init__(self, folder: Path | None = None) -> None:
        self._own_folder = folder is None
        self.folder = Path(folder or tempfile.mkdtemp(prefix="enreach-slapd-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.tls_port = 0
        self.tls: Tls | None = None

    # --- addresses ----------------------------------------------------------------------------------------------
    @property
    def uri(self) -> str:
        """``ldap://`` (plain, or StartTLS)."""
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_uri(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> str:
        assert self.tls is not None
        return str(self.tls.ca_file)

    # --- life ---------------------------------------------------------------------------------------------------
    def start(self) -> Slapd:
        if not Path(SLAPD).exists():
            raise RuntimeError(f"{SLAPD} is missing: install the Debian packages slapd and ldap-utils (make test-deps)")
        for tool in ("ldapadd", "ldapmodify", "ldapdelete"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is missing: install the Debian package ldap-utils (make test-deps)")
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        self.tls = tls_generate(self.folder)
        (self.folder / "slapd.conf").write_text(_config(self.folder, self.tls))
        last_error = ""
        for _ in range(5):
            self.port, self.tls_port = free_port(), free_port()
            self.process = subprocess.Popen(
                [SLAPD, "-f", str(self.folder / "slapd.conf"), "-h", f"{self.uri}/ {self.ldaps_uri}/", "-d", "0"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            if self._wait_ready():
                self.add(_base_ldif())
                return self
            last_error = self._kill()
        raise RuntimeError(f"slapd did not start: {last_error[-800:]}")

    def _wait_ready(self, timeout: float = 20.0) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with (
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
                    socket.create_connection(("127.0.0.1", self.tls_port), timeout=0.5),
                ):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def _kill(self) -> str:
        if self.process is None:
            return ""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        error = (self.process.stderr.read() if self.process.stderr else b"").decode(errors="replace")
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None
        return error

    def stop(self) -> None:
        """End slapd: the directory is down from now on."""
        self._kill()

    def close(self) -> None:
        self.stop()
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Slapd:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- changing the directory, as an administrator ---------------------------------------------------------------
    def _tool(self, tool: str, text: str, *args: str) -> None:
        command = [tool, "-x", "-H", self.uri, "-D", ROOT_DN, "-w", ROOT_PASSWORD, *args]
        result = subprocess.run(command, input=text.encode(), capture_output=True, timeout=30, env=self._env())
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.decode(errors='replace')}")

    def _env(self) -> dict[str, str]:
        return {**os.environ, "LDAPTLS_CACERT": self.ca_file, "LDAPNOINIT": "1"}

    def add(self, ldif: str) -> None:
        """``ldapadd`` these entries."""
        self._tool("ldapadd", ldif)

    def modify(self, ldif: str) -> None:
        """``ldapmodify`` with this change record (``dn: …`` / ``changetype: modify`` / …)."""
        self._tool("ldapmodify", ldif)

    def delete(self, dn: str) -> None:
        """``ldapdelete`` one entry."""
        self._tool("ldapdelete", "", dn)

    # --- shapes -------------------------------------------------------------------------------------------------
    def person_dn(self, uid: str) -> str:
        return f"uid={uid},ou=people,{BASE_DN}"

    def group_dn(self, name: str) -> str:
        return f"cn={name},ou=groups,{BASE_DN}"

    def add_person(self, uid: str, password: str, *, given: str = "", surname: str = "", mail: str = "") -> str:
        """An ``inetOrgPerson`` under ``ou=people``; its DN."""
        lines = [
            f"dn: {self.person_dn(uid)}",
            "objectClass: inetOrgPerson",
            f"uid: {uid}",
            f"cn: {given or uid} {surname or uid}",
            f"sn: {surname or uid}",
            f"userPassword: {password}",
        ]
        if given:
            lines.append(f"givenName: {given}")
        if mail:
            lines.append(f"mail: {mail}")
        self.add("\n".join(lines) + "\n")
        return self.person_dn(uid)

    def add_group(self, name: str, members: list[str]) -> str:
        """A ``groupOfNames`` under ``ou=groups`` (``member`` is required: an empty group holds the root DN)."""
        lines = [f"dn: {self.group_dn(name)}", "objectClass: groupOfNames", f"cn: {name}"]
        lines += [f"member: {dn}" for dn in (members or [ROOT_DN])]
        self.add("\n".join(lines) + "\n")
        return self.group_dn(name)

    def group_add_member(self, group_dn: str, member_dn: str) -> None:
        self.modify(f"dn: {group_dn}\nchangetype: modify\nadd: member\nmember: {member_dn}\n")

    def group_remove_member(self, group_dn: str, member_dn: str) -> None:
        self.modify(f"dn: {group_dn}\nchangetype: modify\ndelete: member\nmember: {member_dn}\n")

    def lock(self, dn: str) -> None:
        """Lock an account for good, as ``pwdAccountLockedTime: 000001010000Z`` does (slapd refuses its bind)."""
        self.modify(f"dn: {dn}\nchangetype: modify\nreplace: pwdAccountLockedTime\npwdAccountLockedTime: {LOCKED}\n")

    # Active Directory shape
    def ad_user_dn(self, name: str) -> str:
        return f"cn={name},ou=corp,{BASE_DN}"

    def ad_group_dn(self, name: str) -> str:
        return f"cn={name},ou=corp,{BASE_DN}"

    def add_ad_user(
        self, sam: str, password: str, *, given: str = "", surname: str = "", disabled: bool = False
    ) -> str:
        """An AD ``user`` (``sAMAccountName``, ``userPrincipalName``, ``userAccountControl``) under ``ou=corp``."""
        control = AD_NORMAL | (AD_DISABLED if disabled else 0)
        lines = [
            f"dn: {self.ad_user_dn(sam)}",
            "objectClass: user",
            f"cn: {sam}",
            f"sn: {surname or sam}",
            f"sAMAccountName: {sam}",
            f"userPrincipalName: {sam}@corp.enreach.test",
            f"userAccountControl: {control}",
            f"mail: {sam}@corp.enreach.test",
            f"displayName: {given or sam} {surname or sam}",
            f"userPassword: {password}",
        ]
        if given:
            lines.append(f"givenName: {given}")
        self.add("\n".join(lines) + "\n")
        return self.ad_user_dn(sam)

    def add_ad_group(self, name: str, members: list[str]) -> str:
        """An AD security ``group`` under ``ou=corp`` (``member`` may name users or other groups)."""
        lines = [f"dn: {self.ad_group_dn(name)}", "objectClass: group", f"cn: {name}", "groupType: -2147483646"]
        lines += [f"member: {dn}" for dn in members]
        self.add("\n".join(lines) + "\n")
        return self.ad_group_dn(name)

    def ad_set_disabled(self, dn: str, disabled: bool) -> None:
        control = AD_NORMAL | (AD_DISABLED if disabled else 0)
        self.modify(f"dn: {dn}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: {control}\n")


if __name__ == "__main__":  # a manual check: start, print the addresses, wait for Ctrl-C
    with Slapd() as server:
        print(f"slapd at {server.uri} and {server.ldaps_uri}; CA {server.ca_file}; Ctrl-C stops it", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
