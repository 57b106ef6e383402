"""Reading and parsing in worker processes gives exactly what one process gives."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import LoadError, SpecError
from reconciler.spec import models_base, parallel
from reconciler.spec.files import directory_files
from reconciler.spec.load import Limits, Specs, load_directory
from reconciler.spec.models import Kind
from reconciler.spec.models_base import (
    e164_problem,
    hostname_verdict,
    remember_e164,
    remember_hostnames,
)
from reconciler.spec.parallel import FileRead, read_files
from reconciler.spec.source import DEFAULT_LIMITS, ParsedFile
from reconciler.spec.validate import checked_strings

from support.spec import site, write


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two files a chunk, so even the example fleet is split over several workers' tasks."""
    monkeypatch.setattr(parallel, "CHUNK_FILES", 2)


def _broken(specs: Path) -> None:
    """Problems of every stage: YAML syntax, types, phone numbers, header, fleet, rule 7."""
    write(specs, "sites/broken.yaml", "apiVersion: sitebuilder/v1\nkind: Site\nmetadata: {x\n")
    write(specs, "sites/typed.yaml", site("typed", "t.example.com").replace("version: 1", "v: a"))
    write(specs, "sites/twin.yaml", site("twin", "shop.acme.com.br"))
    write(specs, "sites/orphan.yaml", site("orphan", "orphan.example.com", tenant="nobody"))
    two = site("m1", "m1.example.com") + "---\n" + site("m2", "M1.example.com")
    write(specs, "sites/many.yaml", two)
    write(specs, "sites/alias.yaml", "a: &x {b: 1}\nc: *x\n")
    write(specs, "weird.yaml", "apiVersion: sitebuilder/v2\nkind: Gadget\n")
    tenant = specs / "tenants" / "acme.yaml"
    tenant.write_text(tenant.read_text().replace("+5511912345678", "+5511000"), encoding="utf-8")
    (specs / "sites" / "link.yaml").symlink_to(specs / "sites" / "lumen.yaml")


def _reads(
    specs: Path, processes: int | None, limits: Limits = DEFAULT_LIMITS
) -> list[tuple[str, int, ParsedFile | None]]:
    """What each file read gave (its ``SourceFile`` is new at each listing)."""
    reads = read_files(directory_files(specs), limits, processes)
    return [(read.source.path, read.length, read.parsed) for read in reads]


def _problems(specs: Path, processes: int, limits: Limits = DEFAULT_LIMITS) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_directory(specs, limits=limits, processes=processes)
    return [problem.render() for problem in caught.value.problems]


def _fields(specs: Specs) -> Iterator[tuple[str, object]]:
    for kind, models in ((Kind.TENANT, specs.tenants), (Kind.SITE, specs.sites)):
        for name in models:
            for field_path in ("", "spec", "spec.domains[0].hostname", "spec.whatsapp"):
                yield f"{kind}/{name}/{field_path}", specs.location(kind, name, field_path)


@pytest.mark.usefixtures("small_chunks")
def test_the_same_specs_and_locations_come_from_worker_processes(specs: Path) -> None:
    serial, workers = load_directory(specs, processes=1), load_directory(specs, processes=2)
    assert workers == serial
    assert list(workers.sites) == list(serial.sites)
    assert list(_fields(workers)) == list(_fields(serial))


@pytest.mark.usefixtures("small_chunks")
def test_a_process_with_other_threads_starts_its_workers_from_a_forkserver(
    specs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as alone:
        alone.setattr(parallel.threading, "active_count", lambda: 1)  # the CLI: one thread
        assert parallel.start_method() == "fork"
    loaded: list[Specs] = []
    methods: list[str] = []

    def load() -> None:  # as the daemon does: from a worker thread
        methods.append(parallel.start_method())
        loaded.append(load_directory(specs, processes=2))

    thread = threading.Thread(target=load)
    thread.start()
    thread.join()
    assert methods == ["forkserver"]
    assert loaded == [load_directory(specs, processes=1)]


@pytest.mark.usefixtures("small_chunks")
def test_the_same_documents_and_problems_in_the_same_order(specs: Path) -> None:
    _broken(specs)
    serial = _reads(specs, 1)
    assert any(parsed is None for _, _, parsed in serial)  # the symbolic link, refused
    assert _reads(specs, 2) == serial
    assert _reads(specs, 3) == serial
    found = _problems(specs, 1)
    assert len(found) >= 9
    assert _problems(specs, 2) == found


@pytest.mark.usefixtures("small_chunks")
def test_a_fleet_over_its_limits_gives_the_same_problem(specs: Path) -> None:
    _broken(specs)
    for limits in (Limits(max_files=5), Limits(max_total_bytes=2_000)):
        found = _problems(specs, 1, limits)
        assert any("the fleet is too large" in problem for problem in found)
        assert _problems(specs, 2, limits) == found


@pytest.mark.usefixtures("small_chunks")
def test_a_file_that_cannot_be_read_stops_the_load_in_both(specs: Path) -> None:
    os.mkfifo(specs / "sites" / "pipe.yaml")
    messages = []
    for processes in (1, 2):
        with pytest.raises(LoadError) as caught:
            load_directory(specs, processes=processes)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert "specs/sites/pipe.yaml" in messages[0]


def test_a_file_past_the_fleet_limit_is_not_a_load_error_in_either(
    specs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.mkfifo(specs / "sites" / "zz-pipe.yaml")  # the 7th file, in the chunk of the 6th
    monkeypatch.setattr(parallel, "CHUNK_FILES", 7)
    limits = Limits(max_files=5)
    found = _problems(specs, 1, limits)
    assert any("the fleet is too large" in problem for problem in found)
    assert _problems(specs, 2, limits) == found


def test_small_trees_stay_in_one_process_unless_told(
    specs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[int] = []

    def spy(files: Iterator[object], limits: Limits, processes: int) -> Iterator[FileRead]:
        used.append(processes)
        return iter(())

    monkeypatch.setattr(parallel, "_read_in_processes", spy)
    assert len(_reads(specs, None)) == 9
    assert used == []
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 9)
    list(read_files(directory_files(specs), DEFAULT_LIMITS))
    automatic = parallel.automatic_processes()
    assert used == ([automatic] if automatic > 1 else [])
    with pytest.raises(ValueError, match="processes must be 1 or more"):
        _reads(specs, 0)


def test_phone_checks_are_cached_per_string_and_can_be_handed_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(models_base, "_e164_problems", {})
    assert e164_problem("+5511912345678") is None
    assert e164_problem("5511912345678") == (
        "'5511912345678' is not an E.164 number (write it like +5511912345678)"
    )
    assert e164_problem("+5511000") == "'+5511000' is not a valid phone number"
    remember_e164({"+4400000000000": "checked elsewhere"})
    assert e164_problem("+4400000000000") == "checked elsewhere"


def test_hostname_checks_are_cached_per_string_and_can_be_handed_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(models_base, "_hostnames", {})
    assert hostname_verdict("WWW.Acme.com.") == (True, "www.acme.com")
    assert hostname_verdict("bücher.example") == (True, "xn--bcher-kva.example")
    assert hostname_verdict("localhost") == (False, "'localhost' is not a fully qualified hostname")
    remember_hostnames({"elsewhere.example": (False, "checked elsewhere")})
    with pytest.raises(ValueError, match="checked elsewhere"):
        models_base.normalize_hostname("elsewhere.example")


def test_the_strings_workers_check_are_found_where_each_kind_has_them() -> None:
    site_data = {
        "kind": "Site",
        "spec": {"domains": [{"hostname": "a.example"}, {"ssl": {}}, "x", {"hostname": 7}]},
    }
    assert checked_strings(site_data) == ([], ["a.example"])
    tenant_data = {"kind": "Tenant", "spec": {"whatsapp": "+5511912345678"}}
    assert checked_strings(tenant_data) == (["+5511912345678"], [])
    policy_data = {"kind": "BillingPolicy", "spec": {"suspension_origin": "o.example"}}
    assert checked_strings(policy_data) == ([], ["o.example"])
    for other in ({"kind": ["Site"]}, {"kind": "Gadget"}, [], "text"):
        assert checked_strings(other) == ([], [])
