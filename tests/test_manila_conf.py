"""The manila.conf importer: a backend section becomes dhss:backend; a password is never in
the YAML nor printed, only the command that stores it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dhss_components.config import parse_stack_config
from dhss_components.manila_conf import main
from dhss_components.plan.__main__ import main as plan_main
from tests.clouds import DEVSTACK_TENANT_NET, DEVSTACK_TENANT_SUBNET
from tests.stack_run import write_key_pair

ROOT = Path(__file__).resolve().parent.parent

# A DevStack-style [generic1] section, with the look-alike `service_password` (Manila's option
# is service_instance_password) that such sections often carry.
DEVSTACK_GENERIC1 = """\
[generic1]
admin_subnet_id = 2c745913-7766-45b3-abfc-33a527e5185b
admin_network_id = dd07dbd2-cb02-4ef3-a8c0-5b3e75013c92
driver_handles_share_servers = True
service_instance_user = manila
service_password = l00k-alike-secret
service_image_name = manila-service-image-master
path_to_private_key = /opt/stack/.ssh/id_rsa
path_to_public_key = /opt/stack/.ssh/id_rsa.pub
share_backend_name = GENERIC1
share_driver = manila.share.drivers.generic.GenericShareDriver
"""


HOSTNAME = "manila-share-1"
"""This machine's host name, as the importer sees it in these tests."""


@pytest.fixture(autouse=True)
def _hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: HOSTNAME)


def run(
    capsys: pytest.CaptureFixture[str], conf: Path, *args: str, backend: str = "generic1"
) -> tuple[int, str, str]:
    code = main([str(conf), "--backend", backend, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(tmp_path: Path, text: str) -> Path:
    conf = tmp_path / "manila.conf"
    conf.write_text(text)
    return conf


def backend_of(out: str) -> dict[str, Any]:
    backend: dict[str, Any] = yaml.safe_load(out)["config"]["dhss:backend"]
    return backend


def test_a_devstack_section_imports_without_its_password(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, write(tmp_path, DEVSTACK_GENERIC1))
    assert code == 0
    backend = backend_of(out)
    assert backend == {
        "admin_subnet_id": "2c745913-7766-45b3-abfc-33a527e5185b",
        "admin_network_id": "dd07dbd2-cb02-4ef3-a8c0-5b3e75013c92",
        "driver_handles_share_servers": True,
        "service_instance_user": "manila",
        "service_image_name": "manila-service-image-master",
        "path_to_private_key": "/opt/stack/.ssh/id_rsa",
        "path_to_public_key": "/opt/stack/.ssh/id_rsa.pub",
        "share_backend_name": "GENERIC1",
        "share_driver": "manila.share.drivers.generic.GenericShareDriver",
        # Neither the section nor [DEFAULT] sets it: Manila's default, this machine's name.
        "service_network_host": "manila-share-1",
    }
    assert (
        "service_network_host: manila-share-1  # Manila's default, this machine's host name: "
        "check it is the manila-share host (openstack network agent list)" in out
    )
    # The look-alike's value is nowhere: not in the YAML, not on stderr.
    assert "l00k-alike-secret" not in out + err
    assert (
        "ignored: service_password: not an option of Manila's generic driver (Manila ignores "
        "it); did you mean service_instance_password? If so, store its value as "
        "service_instance_password (the secret command below)" in err
    )
    assert err.endswith(
        "  # the value of service_password in [generic1], if it meant "
        "service_instance_password:\n"
        "  pulumi config set --secret --path dhss:backend.service_instance_password\n"
    )


def test_the_imported_section_loads_and_runs_under_the_plan(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, out, _ = run(capsys, write(tmp_path, DEVSTACK_GENERIC1))
    config = yaml.safe_load(out)["config"]
    config["dhss:shareNetwork"] = {
        "neutron_net_id": DEVSTACK_TENANT_NET,
        "neutron_subnet_id": DEVSTACK_TENANT_SUBNET,
    }
    config["dhss:shares"] = [
        {
            "name": "projects",
            "size": 10,
            "share_proto": "NFS",
            "access_rules": [{"access_type": "ip", "access_to": "10.0.0.0/26"}],
        }
    ]

    # The config contract accepts it, given key files that exist here.
    public, private = write_key_pair(tmp_path)
    backend = {
        **config["dhss:backend"],
        "path_to_public_key": str(public),
        "path_to_private_key": str(private),
    }
    spec = parse_stack_config(backend, config["dhss:shareNetwork"], config["dhss:shares"])
    assert spec.backend.service_image_name == "manila-service-image-master"
    assert spec.backend.admin_subnet_id == "2c745913-7766-45b3-abfc-33a527e5185b"
    assert spec.backend.service_instance_password is None

    # And the plan runs it as written (the section's key files are not on this machine).
    (tmp_path / "Pulumi.yaml").write_text("name: manila-dhss\nruntime: python\n")
    (tmp_path / "Pulumi.devstack.yaml").write_text(yaml.safe_dump({"config": config}))
    code = plan_main(["--stack", "devstack", "--cwd", str(tmp_path), "--format", "json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert any("/opt/stack/.ssh/id_rsa, which does not exist" in n for n in document["notices"])
    assert document["share_server"]["network_mode"] == "router+admin"
    # No service_network_id in manila.conf: the stack makes Manila's service network itself.
    network = next(r for r in document["resources"] if r["name"] == "share-server-network-network")
    assert network["inputs"]["name"] == "manila_service_network"
    assert document["share_commands"]["projects"]["create"].startswith("sudo -n bash -s -- ensure")


def test_values_take_oslo_config_types(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    conf = write(
        tmp_path,
        """\
[generic1]
driver_handles_share_servers = true
service_instance_user = "manila"
connect_share_server_to_tenant_network = False
service_network_division_mask = 27
max_time_to_build_instance = 600
service_instance_flavor_id = 100
interface_driver = manila.network.linux.interface.NoopInterfaceDriver
cinder_volume_type =
""",
    )
    code, out, err = run(capsys, conf)
    assert code == 0
    backend = backend_of(out)
    assert backend["driver_handles_share_servers"] is True
    assert backend["connect_share_server_to_tenant_network"] is False
    assert backend["service_network_division_mask"] == 27
    assert backend["max_time_to_build_instance"] == 600
    assert backend["service_instance_flavor_id"] == "100"  # a StrOpt stays a string
    assert backend["service_instance_user"] == "manila"  # quotes dropped, as oslo.config does
    assert "cinder_volume_type" not in backend
    assert "note: cinder_volume_type is empty: left at Manila's default" in err
    assert "service_network_host" not in backend  # no host port with the Noop driver


def test_default_is_not_inherited_except_what_manila_reads_there(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    conf = write(
        tmp_path,
        """\
[DEFAULT]
enabled_share_backends = generic1,lvm
host = controller-1
ovs_integration_bridge = br-manila
storage_availability_zone = az-2
service_image_name = some-other-image
service_instance_user = root
debug = True

[generic1]
driver_handles_share_servers = True
service_instance_user = manila
""",
    )
    code, out, err = run(capsys, conf)
    assert code == 0
    backend = backend_of(out)
    assert "service_image_name" not in backend
    assert backend["service_instance_user"] == "manila"
    assert backend["ovs_integration_bridge"] == "br-manila"
    assert backend["storage_availability_zone"] == "az-2"
    assert backend["service_network_host"] == "controller-1"
    assert "ovs_integration_bridge: br-manila  # from [DEFAULT], where Manila reads it" in out
    assert "debug" not in out + err
    assert "not in [DEFAULT] enabled_share_backends" not in err


def test_unsupported_ignored_and_secret_options_stay_out_of_the_yaml(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    conf = write(
        tmp_path,
        """\
[DEFAULT]
enabled_share_backends = lvm

[generic1]
driver_handles_share_servers = True
service_instance_user = manila
service_instance_password = s3cret pass
service_instance_boot_from_volume = True
limit_ssh_access = True
enabled_share_protocols = NFS,CIFS
service_imag_name = typo-image
""",
    )
    code, out, err = run(capsys, conf, "--stack", "tenant-a")
    assert code == 0
    backend = backend_of(out)
    for option in (
        "service_instance_password",
        "service_instance_boot_from_volume",
        "limit_ssh_access",
        "enabled_share_protocols",
        "service_imag_name",
    ):
        assert option not in backend
    assert "s3cret" not in out
    assert "typo-image" not in out + err
    assert (
        "unsupported (not implemented yet; left out): service_instance_boot_from_volume "
        "(boot from volume is not implemented yet)" in err
    )
    assert "ignored: limit_ssh_access: SSH is always limited" in err
    assert "ignored: enabled_share_protocols: not an option of Manila's generic driver" in err
    assert (
        "ignored: service_imag_name: not an option of Manila's generic driver; did you mean "
        "service_image_name?" in err
    )
    assert "note: [generic1] is not in [DEFAULT] enabled_share_backends (lvm)" in err


def test_a_password_is_never_printed_only_the_command_that_prompts_for_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    conf = write(
        tmp_path,
        "[generic1]\ndriver_handles_share_servers = True\n"
        "service_instance_password =  s3cret pass \n",
    )

    code, out, err = run(capsys, conf, "--stack", "tenant-a")

    assert code == 0
    assert "s3cret" not in out + err
    # Without a value the Pulumi CLI asks for it (and reads it from stdin when piped).
    assert err.splitlines()[-3:] == [
        "secrets are not in the YAML; to store them in the stack (encrypted), run each command "
        "below and type the value when the Pulumi CLI asks for it:",
        "  # the value of service_instance_password in [generic1]:",
        "  pulumi config set --secret --path --stack tenant-a "
        "dhss:backend.service_instance_password",
    ]


@pytest.mark.parametrize("real_first", [True, False])
def test_with_the_real_option_and_its_look_alike_one_command_for_the_real_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, real_first: bool
) -> None:
    real, look_alike = "service_instance_password = real-one", "service_password = other-one"
    first, second = (real, look_alike) if real_first else (look_alike, real)
    conf = write(tmp_path, f"[generic1]\ndriver_handles_share_servers = True\n{first}\n{second}\n")

    code, out, err = run(capsys, conf)

    assert code == 0
    commands = [line for line in err.splitlines() if "pulumi config set" in line]
    assert commands == [
        "  pulumi config set --secret --path dhss:backend.service_instance_password"
    ]
    assert "  # the value of service_instance_password in [generic1]:" in err
    assert (
        "ignored: service_password: not an option of Manila's generic driver (Manila ignores "
        "it); it looks like service_instance_password, which [generic1] sets too, and that is "
        "the one Manila uses" in err
    )
    assert "real-one" not in out + err
    assert "other-one" not in out + err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[generic1]\ndriver_handles_share_servers = True\n\n[lvm]\nshare_driver = x\n\n"
            "[generic1]\nservice_instance_user = root\n",
            "[generic1] appears 2 times (lines 1, 7); oslo.config merges them, the later values "
            "winning: keep one",
        ),
        (
            "[DEFAULT]\nhost = a\n[generic1]\ndriver_handles_share_servers = True\n"
            "[DEFAULT]\nhost = b\n",
            "[DEFAULT] appears 2 times (lines 1, 5); oslo.config merges them, the later values "
            "winning: keep one",
        ),
    ],
)
def test_two_sections_of_one_name_are_an_error_naming_their_lines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, message: str
) -> None:
    code, out, err = run(capsys, write(tmp_path, text))

    assert (code, out) == (2, "")
    assert err == f"manila_conf: {message}\n"


def test_a_repeated_section_the_import_does_not_read_is_left_to_manila(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = "[lvm]\na = 1\n[generic1]\ndriver_handles_share_servers = True\n[lvm]\na = 2\n"

    code, out, _ = run(capsys, write(tmp_path, text))

    assert code == 0
    assert backend_of(out)["driver_handles_share_servers"] is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "driver_handles_share_servers = True\n",
            "not an INI file like manila.conf (line 1 comes before any [section] header)",
        ),
        ("[generic1]\nthis line has no value separator\n", "not an INI file like manila.conf"),
        ("config:\n  dhss:backend: {}\n", "not an INI file like manila.conf"),
        (
            "[DEFAULT]\n[lvm]\nshare_driver = x\n",
            "no section [generic1] (backend sections here: [lvm]); pass --backend",
        ),
        (
            "[generic1]\ndriver_handles_share_servers = True\n"
            "share_driver = manila.share.drivers.lvm.LVMShareDriver\n",
            "share_driver = manila.share.drivers.lvm.LVMShareDriver: not Manila's generic driver",
        ),
        (
            "[generic1]\ndriver_handles_share_servers = False\n",
            "driver_handles_share_servers = False: this program builds the share server",
        ),
        (
            "[generic1]\nservice_instance_user = manila\n",
            "does not set driver_handles_share_servers (Manila requires it)",
        ),
        (
            "[generic1]\ndriver_handles_share_servers = maybe\n",
            "driver_handles_share_servers = maybe: not a boolean",
        ),
        (
            "[generic1]\ndriver_handles_share_servers = True\nmax_time_to_attach = soon\n",
            "max_time_to_attach = soon: not an integer",
        ),
    ],
)
def test_bad_files_get_a_clear_error_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, message: str
) -> None:
    code, out, err = run(capsys, write(tmp_path, text))
    assert code == 2
    assert out == ""
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "nope.conf: no such file; check the path"),
        (
            b"[generic1]\nservice_instance_password = caf\xe9\n",
            "manila.conf, line 2, column 32: not UTF-8 text (byte 0xe9); save the file as UTF-8",
        ),
        (b"\x00\xff\xfe[generic1]\x80", "manila.conf, line 1, column 2: not UTF-8 text"),
        (b"[generic1]\n\x00\n", "manila.conf, line 2, column 1: a NUL byte: this is not a text"),
        (
            b"[generic1]\nservice_instance_password hunter2\n",
            "manila.conf: not an INI file like manila.conf (line 2: neither a [section], an "
            "option = value nor a comment)",
        ),
        (
            b"[generic1]\n#" + b"x" * (1 << 20),
            "manila.conf: larger than 1024 KiB, the limit for this file; is it the right file?",
        ),
    ],
)
def test_a_file_that_cannot_be_read_is_one_line_without_its_text(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes | None, message: str
) -> None:
    conf = tmp_path / ("nope.conf" if content is None else "manila.conf")
    if content is not None:
        conf.write_bytes(content)

    code, out, err = run(capsys, conf)

    assert (code, out) == (2, "")
    assert err.startswith(f"manila_conf: {tmp_path}/{message}")
    assert err.count("\n") == 1
    assert "hunter2" not in err


def test_the_command_line_entry_point(tmp_path: Path) -> None:
    conf = write(tmp_path, DEVSTACK_GENERIC1)
    result = subprocess.run(
        [sys.executable, "-m", "dhss_components.manila_conf", str(conf), "--backend", "generic1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert backend_of(result.stdout)["share_backend_name"] == "GENERIC1"
    assert "pulumi config set --secret --path dhss:backend.service_instance_password\n" in (
        result.stderr
    )
    assert "l00k-alike-secret" not in result.stdout + result.stderr
