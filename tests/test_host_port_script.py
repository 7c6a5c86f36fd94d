"""Pure tests of the host-port renderer and static checks of scripts/host_port.sh."""

import ipaddress
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dhss_components.host_port_script import (
    HEREDOC_DELIMITER,
    SCRIPT_PATH,
    HostPortParams,
    InterfaceDriver,
    host_device_name,
    interface_driver,
    render_plug_command,
    render_unplug_command,
)
from dhss_components.interface_drivers import INTERFACE_DRIVERS
from tests.test_share_script import carried

VENV_BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"
PORT_ID = "abcdef01-1234-5678-90ab-cdef01234567"
MAC = "fa:16:3e:12:34:56"


def params(**overrides) -> HostPortParams:
    values: dict[str, Any] = {
        "driver": "ovs",
        "port_id": PORT_ID,
        "mac_address": MAC,
        "cidrs": ("10.254.0.2/28",),
        "bridge": "br-int",
    }
    values.update(overrides)
    return HostPortParams(**values)


def split_command(command: str) -> tuple[list[str], str]:
    """The argv of `bash -s -- ...` and the here-document body of a rendered command."""
    first_line, rest = command.split("\n", 1)
    # A quoted delimiter: the shell expands nothing inside the script.
    assert first_line.endswith(f" <<'{HEREDOC_DELIMITER}'")
    words = shlex.split(first_line)
    body, _, tail = rest.rpartition(f"{HEREDOC_DELIMITER}\n")
    assert tail == ""
    return words[:-1], body


# Manila's test vectors (manila/tests/network/linux/test_interface.py).
@pytest.mark.parametrize(
    ("driver", "expected"),
    [("ovs", "tapabcdef01-12"), ("noop", "tapabcdef01-12"), ("bridge", "ns-abcdef01-12")],
)
def test_host_device_name_matches_manila(driver, expected):
    assert host_device_name(driver, PORT_ID) == expected


def test_bridge_driver_tap_peer_is_manilas_replace_of_the_prefix():
    # BridgeInterfaceDriver: tap_name = device_name.replace("ns-", "tap"); the script does
    # the same, which is the OVS device name.
    device = host_device_name("bridge", PORT_ID)
    assert device.replace("ns-", "tap") == "tapabcdef01-12"


@given(st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True))
def test_device_names_fit_linux_and_keep_the_prefix(port_id):
    drivers: list[tuple[InterfaceDriver, str]] = [
        ("ovs", "tap"),
        ("noop", "tap"),
        ("bridge", "ns-"),
    ]
    for driver, prefix in drivers:
        name = host_device_name(driver, port_id)
        assert name.startswith(prefix)
        assert len(name) <= 14
        assert name == (prefix + port_id)[:14]


def test_interface_drivers_map_manila_class_paths():
    assert {path: row.name for path, row in INTERFACE_DRIVERS.items()} == {
        "manila.network.linux.interface.OVSInterfaceDriver": "ovs",
        "manila.network.linux.interface.BridgeInterfaceDriver": "bridge",
        "manila.network.linux.interface.NoopInterfaceDriver": "noop",
    }
    assert [row.plugs_host_port for row in INTERFACE_DRIVERS.values()] == [True, True, False]
    assert interface_driver("manila.network.linux.interface.NoopInterfaceDriver") == "noop"


def test_unknown_interface_driver_names_the_choices():
    with pytest.raises(ValueError, match=r"OVSInterfaceDriver"):
        interface_driver("manila.network.linux.interface.MidonetInterfaceDriver")


def test_plug_command_argv_and_embedded_script():
    p = params(cidrs=("10.254.0.2/28", "10.254.0.18/28"))
    argv, body = split_command(render_plug_command(p))
    assert argv == [
        "bash", "-s", "--", "plug",
        "--driver", "ovs",
        "--device", "tapabcdef01-12",
        "--port-id", PORT_ID,
        "--mac", MAC,
        "--cidr", "10.254.0.2/28",
        "--cidr", "10.254.0.18/28",
        "--bridge", "br-int",
    ]  # fmt: skip
    assert body == carried(SCRIPT_PATH)


def test_unplug_command_argv_and_embedded_script():
    argv, body = split_command(render_unplug_command(params(driver="bridge", bridge="br-x")))
    assert argv == [
        "bash", "-s", "--", "unplug", "--driver", "bridge", "--device", "ns-abcdef01-12",
        "--port-id", PORT_ID, "--bridge", "br-x",
    ]  # fmt: skip
    assert body == carried(SCRIPT_PATH)


def test_script_ends_with_main_so_bash_reads_it_whole_before_running():
    lines = SCRIPT_PATH.read_text().rstrip("\n").splitlines()
    assert lines[0] == "#!/bin/bash"
    assert lines[-1] == 'main "$@"'


mac_addresses = st.lists(st.integers(0, 255), min_size=6, max_size=6).map(
    lambda octets: ":".join(f"{o:02x}" for o in octets)
)
interfaces = st.tuples(st.ip_addresses(v=4), st.integers(8, 32)).map(lambda t: f"{t[0]}/{t[1]}")


@given(
    port_id=st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True),
    mac=mac_addresses,
    cidrs=st.lists(interfaces, max_size=4, unique_by=lambda c: c.split("/")[0]),
    driver=st.sampled_from(["ovs", "bridge", "noop"]),
)
def test_arguments_survive_the_shell(port_id, mac, cidrs, driver):
    p = HostPortParams(
        driver=driver, port_id=port_id, mac_address=mac, cidrs=tuple(cidrs), bridge="br-int"
    )
    argv, _ = split_command(render_plug_command(p))
    assert argv[4:10] == ["--driver", driver, "--device", p.device, "--port-id", port_id]
    assert [argv[i + 1] for i, word in enumerate(argv) if word == "--cidr"] == cidrs


def test_params_normalise_mac_and_cidrs():
    p = params(mac_address="FA:16:3E:AB:CD:EF", cidrs=["10.254.0.2/28"])
    assert p.mac_address == "fa:16:3e:ab:cd:ef"
    assert p.cidrs == ("10.254.0.2/28",)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"driver": "linuxbridge"}, r"interface_driver\(\)"),
        ({"port_id": ""}, r"Neutron port id"),
        ({"port_id": "abc;rm"}, r"Neutron port id"),
        ({"mac_address": "fa:16:3e:12:34"}, r"fa:16:3e:12:34:56"),
        ({"cidrs": ("10.254.0.2",)}, r"no prefix length"),
        ({"cidrs": ("fd00::2/64",)}, r"IPv4"),
        ({"cidrs": ("10.254.0.2/28", "10.254.0.2/27")}, r"twice"),
        ({"cidrs": "10.254.0.2/28"}, r"sequence"),
        ({"bridge": "br int"}, r"interface name"),
    ],
)
def test_params_reject_bad_values_with_a_fix(overrides, message):
    with pytest.raises((ValueError, TypeError), match=message):
        params(**overrides)


def test_shellcheck_passes():
    result = subprocess.run(
        [str(VENV_BIN / "shellcheck"), "--shell=bash", str(SCRIPT_PATH)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_bash_parses_the_script():
    subprocess.run(["bash", "-n", str(SCRIPT_PATH)], check=True)


def test_posix_sh_parses_the_rendered_commands():
    # pulumi_command's local.Command runs its command with /bin/sh -c.
    for command in (render_plug_command(params()), render_unplug_command(params())):
        subprocess.run(["sh", "-n", "-c", command], check=True)


# The noop driver touches nothing, so running the real command is side-effect free: it
# proves the script arrives whole on stdin and parses its arguments.
@pytest.mark.parametrize("render", [render_plug_command, render_unplug_command])
def test_noop_driver_runs_and_does_nothing(render):
    result = subprocess.run(
        ["sh", "-c", render(params(driver="noop"))], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "tapabcdef01-12" in result.stderr
    assert "NoopInterfaceDriver" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "missing action"),
        (["attach", "--driver", "noop"], "unknown action 'attach'"),
        (["plug", "--driver", "vpp", "--device", "tap0"], "unknown driver 'vpp'"),
        (["plug", "--driver", "noop", "--device"], "option --device needs a value"),
        (["plug", "--driver", "noop", "--device", "tap0"], "--port-id is required"),
        (["plug", "--driver", "ovs", "--device", "tap0", "--port-id", "x", "--mac", "zz"], "--mac"),
        (
            ["plug", "--driver", "ovs", "--device", "tap0", "--port-id", "x", "--mac", MAC,
             "--cidr", "10.0.0.1"],
            "is not an IPv4 address with a prefix length",
        ),
        (["unplug", "--driver", "ovs", "--device", "tap0"], "--port-id is required"),
        (["unplug", "--driver", "ovs", "--device", "tap0", "--port-id", "x/.."], "Neutron port id"),
        (["unplug", "--driver", "bridge", "--device", "tap0", "--port-id", "x"], "starts with ns-"),
        (["unplug", "--driver", "ovs", "--device", "much-too-long-name"], "interface name"),
        (
            ["plug", "--driver", "ovs", "--device", "tap0", "--port-id", "x", "--mac", MAC,
             "--cidr", "10.0.0.256/24"],
            "is not an IPv4 address with a prefix length",
        ),
        (
            ["plug", "--driver", "ovs", "--device", "tap0", "--port-id", "x", "--mac", MAC,
             "--cidr", "10.0.0.1/33"],
            "is not an IPv4 address with a prefix length",
        ),
        (["plug", "--driver", "ovs", "--clear-cidr", "10.0.0.0/24"], "unknown option --clear-cidr"),
    ],
)  # fmt: skip
def test_script_rejects_bad_arguments_before_touching_anything(args, message):
    result = subprocess.run(
        ["bash", str(SCRIPT_PATH), *args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "usage: host_port.sh plug" in result.stderr


def script_functions() -> str:
    """The script without its last line (`main "$@"`): its settings and functions only."""
    lines = SCRIPT_PATH.read_text().rstrip("\n").splitlines()
    assert lines[-1] == 'main "$@"'
    return "\n".join(lines[:-1]) + "\n"


# The routes that keep the port's subnets' traffic on the port are the subnet's two halves:
# longer than any other route to the subnet itself, and covering all of it.
@given(st.lists(interfaces, min_size=1, max_size=30))
def test_subnet_halves_cover_the_subnet_with_longer_prefixes(cidrs):
    script = script_functions()
    script += 'for cidr in "$@"; do echo "$cidr:" $(subnet_halves "$cidr"); done\n'
    result = subprocess.run(
        ["bash", "-c", script, "bash", *cidrs], capture_output=True, text=True, check=True
    )
    for cidr, line in zip(cidrs, result.stdout.splitlines(), strict=True):
        network = ipaddress.IPv4Interface(cidr).network
        expected = [] if network.prefixlen == 32 else list(network.subnets(prefixlen_diff=1))
        assert line.split() == [f"{cidr}:", *map(str, expected)]
