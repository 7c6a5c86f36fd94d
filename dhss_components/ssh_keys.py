"""SSH keys as the config hands them over: read, checked, never used here.

The share commands' SSH client is pulumi-command's (Go's x/crypto/ssh), so a key the config
accepts must be one that client can use: an unencrypted private key (the program never sets
``privateKeyPassword``), the private half of the public key imported as the keypair, and host
keys of a type it negotiates as it is pinned (it offers exactly the pinned key's type).

Pure: text in, a verdict out; no cryptography library, only the container formats.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

PUBLIC_KEY_TYPES = (
    "ssh-rsa",
    "ssh-ed25519",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)
"""Host key types a pinned connection can negotiate. pulumi-command offers exactly the pinned
key's type (remote/connection.go: HostKeyAlgorithms = publicKey.Type()): for an RSA key that is
"ssh-rsa" (SHA-1), which OpenSSH servers refuse since 8.8; DSA is gone from them; security-key
types are never host keys."""

_OPENSSH_MAGIC = b"openssh-key-v1\0"
_PEM = re.compile(
    r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----\s*(?P<headers>(?:[A-Za-z-]+:[^\n]*\n)*)\s*"
    r"(?P<body>[A-Za-z0-9+/=\s]+?)\s*-----END \1PRIVATE KEY-----"
)


@dataclass(frozen=True)
class PublicKey:
    type: str
    blob: bytes

    @property
    def line(self) -> str:
        """As authorized_keys and known_hosts write it, without a comment."""
        return f"{self.type} {base64.b64encode(self.blob).decode()}"


def parse_public_key(text: str) -> tuple[PublicKey | None, str | None]:
    """(the key, problem) for an SSH public key line ("ssh-ed25519 AAAA... comment")."""
    parts = text.split()
    if len(parts) < 2 or parts[0] not in PUBLIC_KEY_TYPES:
        return None, "is not an SSH public key (expected 'ssh-ed25519 AAAA... comment')"
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        embedded = blob[4 : 4 + length].decode("ascii")
    except (ValueError, struct.error, UnicodeDecodeError):
        return None, "is not an SSH public key (its base64 body is damaged)"
    if embedded != parts[0]:
        return None, f"is not an SSH public key (it says {parts[0]} but holds {embedded})"
    return PublicKey(parts[0], blob), None


def host_key_problem(key: PublicKey) -> str | None:
    if key.type in HOST_KEY_TYPES:
        return None
    return (
        f"is an {key.type} key, which a pinned connection cannot negotiate (pulumi-command "
        f"offers only the pinned key's own type; servers refuse ssh-rsa's SHA-1): pin the "
        f"host's ed25519 or ECDSA key ({', '.join(HOST_KEY_TYPES)})"
    )


def read_public_key(path: str) -> tuple[PublicKey | None, str | None]:
    """(key, problem) for path_to_public_key."""
    try:
        text = Path(os.path.expanduser(path)).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None, f"{path}: no such file; create a key pair (ssh-keygen) or fix the path"
    except UnicodeDecodeError:
        return None, f"{path}: not UTF-8 text; point it at the .pub file"
    except (PermissionError, IsADirectoryError, OSError) as exc:
        return None, f"{path}: cannot be read ({exc.__class__.__name__}); fix its permissions"
    key, problem = parse_public_key(text)
    return key, (f"{path} {problem}; point it at the .pub file" if problem else None)


def _string(data: bytes, offset: int) -> tuple[bytes, int]:
    (length,) = struct.unpack(">I", data[offset : offset + 4])
    end = offset + 4 + length
    if end > len(data):
        raise ValueError("truncated")
    return data[offset + 4 : end], end


def _openssh_public_blob(body: bytes) -> tuple[bytes | None, str | None]:
    """The public key an OpenSSH private key file carries, or why it cannot be used."""
    if not body.startswith(_OPENSSH_MAGIC):
        return None, "is not an OpenSSH private key (its body lacks openssh-key-v1)"
    try:
        cipher, offset = _string(body, len(_OPENSSH_MAGIC))
        _kdf, offset = _string(body, offset)
        _kdf_options, offset = _string(body, offset)
        (count,) = struct.unpack(">I", body[offset : offset + 4])
        public, _ = _string(body, offset + 4)
    except (ValueError, struct.error):
        return None, "is not a usable OpenSSH private key (its body is damaged)"
    if cipher != b"none":
        return None, ENCRYPTED
    if count != 1:
        return None, f"holds {count} keys; give a file with one"
    return public, None


ENCRYPTED = (
    "is encrypted with a passphrase, which the share commands cannot type (pulumi-command "
    "is given no passphrase): use a key without one for the service instance "
    "(ssh-keygen -p -N '' -f FILE makes a copy's passphrase empty)"
)


def read_private_key(path: str, public: PublicKey | None) -> tuple[str | None, str | None]:
    """(key text, problem): readable, unencrypted, and the private half of ``public``."""
    try:
        text = Path(os.path.expanduser(path)).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, f"{path}: no such file; fix the path to the private half of the key pair"
    except UnicodeDecodeError:
        # Never the bytes, nor where they are: they would be a private key's.
        return None, (
            f"{path}: not UTF-8 text (its bytes are not shown: they are a secret's); point it at "
            "the private key file (PEM or OpenSSH, which are ASCII)"
        )
    except (PermissionError, IsADirectoryError, OSError) as exc:
        return None, f"{path}: cannot be read ({exc.__class__.__name__}); fix its permissions"
    match = _PEM.search(text)
    if match is None:
        return None, f"{path} is not a PEM/OpenSSH private key; point it at the private key file"
    if match.group(1).strip() == "ENCRYPTED" or "ENCRYPTED" in match.group("headers"):
        return None, f"{path} {ENCRYPTED}"
    try:
        body = base64.b64decode("".join(match.group("body").split()), validate=True)
    except (binascii.Error, ValueError):
        return None, f"{path} is not a usable private key (its base64 body is damaged)"
    if match.group(1).strip() == "OPENSSH":
        blob, problem = _openssh_public_blob(body)
        if problem:
            return None, f"{path} {problem}"
        if public is not None and blob != public.blob:
            return None, (
                f"{path} is not the private half of path_to_public_key ({public.type} key "
                "imported as the keypair): the service instance would refuse the commands' "
                "login; point both at the same key pair"
            )
    elif not body.startswith(b"\x30"):  # a DER SEQUENCE: PKCS#1, SEC1 or PKCS#8
        return None, f"{path} is not a usable private key (its body is not DER)"
    return text, None


def _pack(*fields: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(field)) + field for field in fields)


def stand_in_private_key(public: PublicKey, filler: bytes) -> str:
    """An unencrypted OpenSSH private key file for ``public`` whose secret part is ``filler``.

    It logs in nowhere; it lets a plan or a test run the config checks as a real key file would
    (the container, its one public key), where no real key can be had.
    """
    check = filler[:4].ljust(4, b"\0")
    private = check + check + _pack(public.type.encode(), filler, b"stand-in")
    private += bytes(range(1, 8 - len(private) % 8 + 1)) if len(private) % 8 else b""
    body = _OPENSSH_MAGIC + _pack(b"none", b"none", b"") + struct.pack(">I", 1)
    body += _pack(public.blob, private)
    text = base64.b64encode(body).decode()
    lines = [text[i : i + 70] for i in range(0, len(text), 70)]
    return (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        + "\n".join(lines)
        + ("\n-----END OPENSSH PRIVATE KEY-----\n")
    )
