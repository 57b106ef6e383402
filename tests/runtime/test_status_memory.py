"""WriteMemory: the status store's compact memory of the last write of every row."""

from __future__ import annotations

from reconciler.runtime.status_memory import WriteMemory

FINGERPRINT = ("True", "Published", "site is live", "", "c1", "acme", "acme-home")


def test_a_row_is_unchanged_only_with_the_same_fingerprint_within_the_refresh() -> None:
    memory = WriteMemory()
    assert not memory.unchanged("Site/acme-home", "Synced", FINGERPRINT, 100.0, 600.0)
    memory.note("Site/acme-home", "Synced", FINGERPRINT, 100.0)
    assert memory.unchanged("Site/acme-home", "Synced", FINGERPRINT, 699.9, 600.0)
    assert not memory.unchanged("Site/acme-home", "Synced", FINGERPRINT, 700.0, 600.0)
    changed = ("False", *FINGERPRINT[1:])
    assert not memory.unchanged("Site/acme-home", "Synced", changed, 101.0, 600.0)
    assert not memory.unchanged("Site/acme-home", "Ready", FINGERPRINT, 101.0, 600.0)
    assert not memory.unchanged("Site/acme-shop", "Synced", FINGERPRINT, 101.0, 600.0)


def test_a_new_write_replaces_the_last_one() -> None:
    memory = WriteMemory()
    memory.note("Site/acme-home", "Synced", FINGERPRINT, 100.0)
    changed = ("False", *FINGERPRINT[1:])
    memory.note("Site/acme-home", "Synced", changed, 200.0)
    assert memory.unchanged("Site/acme-home", "Synced", changed, 750.0, 600.0)
    assert not memory.unchanged("Site/acme-home", "Synced", FINGERPRINT, 201.0, 600.0)
    assert len(memory) == 1


def test_times_before_the_epoch_and_fractions_of_a_second_are_kept() -> None:
    memory = WriteMemory()
    memory.note("Tenant/acme", "Billing", FINGERPRINT, -5.25)
    assert memory.unchanged("Tenant/acme", "Billing", FINGERPRINT, -4.0, 1.5)
    assert not memory.unchanged("Tenant/acme", "Billing", FINGERPRINT, -3.75, 1.5)


def test_dropped_resources_and_a_clear_are_forgotten() -> None:
    memory = WriteMemory()
    for resource in ("Site/acme-home", "Hostname/www.acme.com"):
        for condition in ("Synced", "Ready"):
            memory.note(resource, condition, FINGERPRINT, 100.0)
    assert len(memory) == 4
    memory.drop(["Site/acme-home", "Site/never-written"])
    assert len(memory) == 2
    assert not memory.unchanged("Site/acme-home", "Synced", FINGERPRINT, 101.0, 600.0)
    assert memory.unchanged("Hostname/www.acme.com", "Ready", FINGERPRINT, 101.0, 600.0)
    memory.clear()
    assert len(memory) == 0
    assert not memory.unchanged("Hostname/www.acme.com", "Ready", FINGERPRINT, 101.0, 600.0)
