"""Key files the config accepts are keys the share commands can use (real ssh-keygen keys)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from dhss_components.ssh_keys import read_private_key, read_public_key
from tests.test_config import only_problem


def keygen(path: Path, *options: str, passphrase: str = "") -> tuple[Path, Path]:
    subprocess.run(
        ["ssh-keygen", "-q", "-N", passphrase, "-C", "test", "-f", str(path), *options],
        check=True,
    )
    return path.with_suffix(".pub"), path


@pytest.mark.parametrize(
    "options",
    [("-t", "ed25519"), ("-t", "ecdsa"), ("-t", "rsa", "-b", "2048"), ("-t", "rsa", "-m", "PEM")],
)
def test_a_real_unencrypted_pair_is_accepted(tmp_path: Path, options: tuple[str, ...]) -> None:
    public_path, private_path = keygen(tmp_path / "id", *options)
    public, problem = read_public_key(str(public_path))
    assert problem is None
    text, problem = read_private_key(str(private_path), public)
    assert problem is None
    assert text == private_path.read_text()


@pytest.mark.parametrize("options", [("-t", "ed25519"), ("-t", "rsa", "-m", "PEM")])
def test_a_key_with_a_passphrase_is_refused(tmp_path: Path, options: tuple[str, ...]) -> None:
    public_path, private_path = keygen(tmp_path / "id", *options, passphrase="pass phrase")
    public, _ = read_public_key(str(public_path))
    _, problem = read_private_key(str(private_path), public)
    assert problem is not None
    assert "is encrypted with a passphrase" in problem
    assert "ssh-keygen -p" in problem


def test_the_private_half_of_another_pair_is_refused(
    config: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    config["backend"]["path_to_public_key"] = str(keygen(tmp_path / "a" / "id", "-t", "ed25519")[0])
    config["backend"]["path_to_private_key"] = str(
        keygen(tmp_path / "b" / "id", "-t", "ed25519")[1]
    )
    message = only_problem(config)
    assert message.startswith("dhss:backend.path_to_private_key: ")
    assert "is not the private half of path_to_public_key" in message


@pytest.mark.parametrize(
    "text",
    [
        "-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n",
        "-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n",
        "-----BEGIN OPENSSH PRIVATE KEY-----\n!!!\n-----END OPENSSH PRIVATE KEY-----\n",
    ],
)
def test_a_file_that_only_looks_like_a_key_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "junk"
    path.write_text(text)
    _, problem = read_private_key(str(path), None)
    assert problem is not None
    assert problem.startswith(f"{path} is not")


@pytest.mark.parametrize(
    ("options", "accepted"),
    [(("-t", "ed25519"), True), (("-t", "ecdsa"), True), (("-t", "rsa", "-b", "2048"), False)],
)
def test_host_keys_a_pinned_connection_can_negotiate(
    config: dict[str, Any], tmp_path: Path, options: tuple[str, ...], accepted: bool
) -> None:
    public = keygen(tmp_path / "host", *options)[0].read_text()
    config["backend"]["service_instance_host_key"] = public
    if accepted:
        from dhss_components.config import parse_stack_config

        spec = parse_stack_config(config["backend"], config["shareNetwork"], config["shares"])
        assert spec.backend.service_instance_host_key == " ".join(public.split()[:2])
    else:
        message = only_problem(config)
        assert message.startswith("dhss:backend.service_instance_host_key: ")
        assert "cannot negotiate" in message


def test_a_bastion_without_a_key_is_refused(config: dict[str, Any]) -> None:
    del config["backend"]["path_to_private_key"]  # the keypair's public half stays
    config["backend"]["service_instance_password"] = "secret"
    config["backend"]["ssh_proxy"] = {
        "host": "bastion.example.org",
        "user": "jump",
        "source_cidrs": ["192.0.2.10/32"],
        "host_key": "unverified",
    }
    message = only_problem(config)
    assert message.startswith("dhss:backend.ssh_proxy.path_to_private_key: the bastion needs a key")
