"""Restart and rehydrate with changed schemas: the mismatch policies, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors import ObjectResetError
from harness import open_test_runtime
from storage import MigrationError, SchemaMismatchError
from tests.helpers import concurrent_outcomes
from tests.integration.objects import (
    LedgerV1,
    LedgerV2,
    LedgerV2Broken,
    LedgerV2Migrating,
    MirrorV1,
    MirrorV2,
    Upstream,
)


async def test_sync_absent_throws_until_the_old_version_returns(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, {"LEDGER": LedgerV1}) as rt:
        ledger = rt.namespace("LEDGER").get_by_name("acme")
        await ledger.add(5)
        await ledger.add(7)
        await rt.restart({"LEDGER": LedgerV2})
        for outcome in await concurrent_outcomes(10, ledger.total):
            assert isinstance(outcome, SchemaMismatchError)
            assert (outcome.stored, outcome.declared) == (1, 2)
            assert "version 1" in str(outcome)
            assert "declares 2" in str(outcome)
        await rt.restart({"LEDGER": LedgerV1})
        assert await ledger.total() == 12


async def test_migrations_migrate_and_leave_a_backup(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, {"LEDGER": LedgerV1}) as rt:
        ledger = rt.namespace("LEDGER").get_by_name("acme")
        await ledger.add(5)
        await rt.restart({"LEDGER": LedgerV2Migrating})
        assert await ledger.columns() == ["id", "amount", "currency"]
        assert await ledger.total() == 5
    assert len(list((tmp_path / ".backups" / "LEDGER").iterdir())) == 1


async def test_a_failing_migration_leaves_version_1_and_its_data(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, {"LEDGER": LedgerV1}) as rt:
        ledger = rt.namespace("LEDGER").get_by_name("acme")
        await ledger.add(5)
        await rt.restart({"LEDGER": LedgerV2Broken})
        with pytest.raises(MigrationError, match="the migration to 2 is broken"):
            await ledger.total()
        await rt.restart({"LEDGER": LedgerV1})
        assert await ledger.columns() == ["id", "amount"]
        assert await ledger.total() == 5


async def test_sync_present_clears_and_refills_and_no_caller_sees_a_half_state(
    tmp_path: Path,
) -> None:
    Upstream.failures_left = 0
    async with open_test_runtime(tmp_path, {"MIRROR": MirrorV1}) as rt:
        mirror = rt.namespace("MIRROR").get_by_name("m")
        await mirror.scribble(-1)  # local junk that a clear must remove
        assert await mirror.rows() == [-1]  # a first start is no mismatch: nothing synced
        Upstream.rows = [1, 2, 3]
        await rt.restart({"MIRROR": MirrorV2})
        # A burst arriving while the clear and the sync run: all see only the refill.
        assert await concurrent_outcomes(50, mirror.rows) == [[1, 2, 3]] * 50


async def test_a_failing_sync_fails_every_queued_caller_and_the_next_call_retries(
    tmp_path: Path,
) -> None:
    Upstream.rows = [7]
    async with open_test_runtime(tmp_path, {"MIRROR": MirrorV1}) as rt:
        mirror = rt.namespace("MIRROR").get_by_name("m")
        await mirror.scribble(-1)
        Upstream.failures_left = 1
        await rt.restart({"MIRROR": MirrorV2})
        outcomes = await concurrent_outcomes(5, mirror.rows)
        assert all(isinstance(o, ObjectResetError) for o in outcomes)
        assert all("upstream unreachable" in str(o) for o in outcomes)
        assert await mirror.rows() == [7]
