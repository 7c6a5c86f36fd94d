"""A share restored from a Cinder snapshot (or copied from a volume), as Manila's generic driver
offers with create_share_from_snapshot: the volume is made from it, once."""

from __future__ import annotations

from typing import Any

import pytest

from dhss_components.simulated_cloud import CloudError, SimulatedCloud
from tests.stack_run import run_stack
from tests.test_config import only_problem

VOLUME = "openstack:blockstorage/volume:Volume"
SNAPSHOT = "0e7d6c1b-3f5a-4b2e-9c8d-7a6b5c4d3e2f"


def test_the_volume_is_made_from_the_snapshot_and_keeps_its_data_after(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    cloud.add_snapshot(size=10, snapshot_id=SNAPSHOT)
    config["shares"][0]["snapshot_id"] = SNAPSHOT
    run = run_stack(cloud, config)
    volume = cloud.one(VOLUME)
    assert volume.inputs["snapshotId"] == SNAPSHOT
    # The source matters once: dropping it later never replaces the volume that has the data.
    assert set(run.monitor.named("share-server-share-projects-volume").ignore_changes) == {
        "snapshotId",
        "sourceVolId",
    }
    del config["shares"][0]["snapshot_id"]
    run_stack(cloud, config)
    assert cloud.one(VOLUME).id == volume.id


def test_a_copy_of_another_volume(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    source = cloud.add_volume(size=5)
    config["shares"][0]["source_volume_id"] = source
    run_stack(cloud, config)
    assert cloud.one(VOLUME).inputs["sourceVolId"] == source


def test_a_share_smaller_than_its_snapshot_is_refused_as_cinder_refuses_it(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    cloud.add_snapshot(size=20, snapshot_id=SNAPSHOT)
    config["shares"][0]["snapshot_id"] = SNAPSHOT  # the share asks for 10 GiB
    with pytest.raises(CloudError, match="cannot be smaller than the snapshot size 20GB"):
        run_stack(cloud, config)


def test_one_source_only(config: dict[str, Any]) -> None:
    config["shares"][0].update(snapshot_id=SNAPSHOT, source_volume_id=SNAPSHOT)
    assert only_problem(config).startswith("dhss:shares[0].source_volume_id: a share's volume")


@pytest.mark.parametrize("key", ["snapshot_id", "source_volume_id"])
def test_a_source_that_is_no_id(config: dict[str, Any], key: str) -> None:
    config["shares"][0][key] = "nightly-backup"
    assert only_problem(config).startswith(f"dhss:shares[0].{key}: 'nightly-backup' is not an")
