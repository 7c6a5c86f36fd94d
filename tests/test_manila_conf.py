"""from-manila-conf: a manila.conf backend section becomes dhss:backend, secrets never in YAML."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dhss_components import plan
from dhss_components.config import parse_stack_config
from dhss_components.manila_conf import main
from dhss_components.simulated_cloud import DEVSTACK_TENANT_NET, DEVSTACK_TENANT_SUBNET
from tests.stack_run import write_key_pair

ROOT = Path(__file__).resolve().parent.parent

# The seed's [generic1] section, as written in shared/reference/
# seed-manila-dhss-generic-driver.md ("Config in generic"), its `service_password` included.
SEED_GENERIC1 = """\
[generic1]
admin_subnet_id = 2c745913-7766-45b3-abfc-33a527e5185b
admin_network_id = dd07dbd2-cb02-4ef3-a8c0-5b3e75013c92
driver_handles_share_servers = True
service_instance_user = manila
service_password = manila
service_image_name = manila-service-image-master
path_to_private_key = /opt/stack/.ssh/id_rsa
path_to_public_key = /opt/stack/.ssh/id_rsa.pub
share_backend_name = GENERIC1
share_driver = manila.share.drivers.generic.GenericShareDriver
"""


def run(
    capsys: pytest.CaptureFixture[str], conf: Path, *args: str, backend: str = "generic1"
) -> tuple[int, str, str]:
    code = main(["from-manila-conf", str(conf), "--backend", backend, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(tmp_path: Path, text: str) -> Path:
    conf = tmp_path / "manila.conf"
    conf.write_text(text)
    return conf


def backend_of(out: str) -> dict[str, Any]:
    backend: dict[str, Any] = yaml.safe_load(out)["config"]["dhss:backend"]
    return backend


def test_the_seed_section_imports_without_its_password_in_the_yaml(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, write(tmp_path, SEED_GENERIC1))
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
        # Manila's fallback when neither the section nor [DEFAULT] host sets it.
        "service_network_host": backend["service_network_host"],
    }
    assert "password" not in out
    assert "manila\n" not in out.split("service_instance_user: manila\n", 1)[1]
    # The near-miss is named, with Manila's real option...
    assert (
        "ignored: service_password: not an option of Manila's generic driver (Manila ignores "
        "it); did you mean service_instance_password?" in err
    )
    # ...and its value goes only into a clearly labelled secret command.
    assert "# service_password from [generic1], if it meant service_instance_password:" in err
    assert "pulumi config set --secret --path dhss:backend.service_instance_password manila" in err


def test_the_imported_seed_loads_and_runs_under_the_plan(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, out, _ = run(capsys, write(tmp_path, SEED_GENERIC1))
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

    # And the plan runs it as written (the seed's key files are not on this machine).
    (tmp_path / "Pulumi.yaml").write_text("name: manila-dhss\nruntime: python\n")
    (tmp_path / "Pulumi.seed.yaml").write_text(yaml.safe_dump({"config": config}))
    code = plan.main(["--stack", "seed", "--cwd", str(tmp_path), "--format", "json"])
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
    assert (
        "pulumi config set --secret --path --stack tenant-a "
        "dhss:backend.service_instance_password 's3cret pass'" in err
    )


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


def test_missing_and_binary_files_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, tmp_path / "nope.conf")
    assert (code, out) == (2, "")
    assert "nope.conf: no such file" in err
    binary = tmp_path / "manila.conf"
    binary.write_bytes(b"\x00\xff\xfe[generic1]\x80")
    code, out, err = run(capsys, binary)
    assert (code, out) == (2, "")
    assert "not a text file" in err


def test_the_command_line_entry_point(tmp_path: Path) -> None:
    conf = write(tmp_path, SEED_GENERIC1)
    command = ["-m", "dhss_components.config", "from-manila-conf", str(conf)]
    result = subprocess.run(
        [sys.executable, *command, "--backend", "generic1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert backend_of(result.stdout)["share_backend_name"] == "GENERIC1"
    assert "service_instance_password manila" in result.stderr
