"""Whole-fleet checks: unique names, references that resolve, one site per hostname."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.spec.load import load_directory

from support.spec import only_problem, problems, site, write


def test_a_site_naming_an_unknown_tenant_is_a_dangling_reference(specs: Path) -> None:
    write(specs, "sites/x.yaml", site("x", "x.example.com", tenant="acmee"))
    assert only_problem(specs) == (
        "specs/sites/x.yaml:6:3: Site/x: spec.tenant: Tenant 'acmee' is not defined; "
        "did you mean 'acme'?"
    )


def test_a_tenant_naming_an_unknown_policy_is_a_dangling_reference(specs: Path) -> None:
    path = specs / "tenants" / "lumen.yaml"
    path.write_text(path.read_text().replace("policy: standard", "policy: gold"), encoding="utf-8")
    assert only_problem(specs) == (
        "specs/tenants/lumen.yaml:8:3: Tenant/lumen: spec.policy: BillingPolicy 'gold' is not "
        "defined"
    )


def test_references_to_an_invalid_document_are_not_reported_as_dangling(specs: Path) -> None:
    path = specs / "tenants" / "acme.yaml"
    path.write_text(path.read_text().replace("cus_acme", "customer-acme"), encoding="utf-8")
    found = problems(specs)
    assert len(found) == 1
    assert found[0].startswith("specs/tenants/acme.yaml:10:5: Tenant/acme: spec.stripe.customer:")


def test_two_documents_of_one_kind_may_not_share_a_name(specs: Path) -> None:
    write(
        specs,
        "sites/zz.yaml",
        site("acme-home", "other.example.com").replace(
            "pages_project: acme-home", "pages_project: acme-home-2"
        ),
    )
    assert only_problem(specs) == (
        "specs/sites/zz.yaml:4:3: Site/acme-home: metadata.name: Site 'acme-home' is already "
        "defined at specs/sites/acme-home.yaml:2:1"
    )


def test_documents_of_different_kinds_may_share_a_name(specs: Path) -> None:
    write(specs, "sites/acme.yaml", site("acme", "other.example.com"))
    assert "acme" in load_directory(specs).sites


@pytest.mark.parametrize(
    ("claimed", "shown"),
    [
        (
            "WWW.AcmeBakery.com",
            "'WWW.AcmeBakery.com' is already claimed by Site/acme-home as 'www.acmebakery.com'",
        ),
        (
            "www.acmebakery.com.",
            "'www.acmebakery.com.' is already claimed by Site/acme-home as 'www.acmebakery.com'",
        ),
        (
            "www.acmebakery.com",
            "'www.acmebakery.com' is already claimed by Site/acme-home "
            "(specs/sites/acme-home.yaml:12:7)",
        ),
    ],
)
def test_a_hostname_belongs_to_one_site_whatever_its_case_or_final_dot(
    specs: Path, claimed: str, shown: str
) -> None:
    write(specs, "sites/zz.yaml", site("zz", claimed))
    found = only_problem(specs)
    assert found.startswith(
        "specs/sites/zz.yaml:10:7: Site/zz: spec.domains[0].hostname: hostname "
    )
    assert shown in found
    assert found.endswith("a hostname belongs to one site")


def test_a_hostname_belongs_to_one_site_in_unicode_or_punycode_form(specs: Path) -> None:
    write(specs, "sites/zz.yaml", site("zz", "xn--bistr-lisboa-iib.pt"))
    assert only_problem(specs) == (
        "specs/sites/zz.yaml:10:7: Site/zz: spec.domains[0].hostname: hostname "
        "'xn--bistr-lisboa-iib.pt' is already claimed by Site/bistro-menu as 'bistrô-lisboa.pt' "
        "(specs/sites/bistro-menu.yaml:15:7); a hostname belongs to one site"
    )


def test_a_hostname_listed_twice_in_one_site_is_reported_once(specs: Path) -> None:
    text = site("zz", "shop.example.com") + "    - hostname: SHOP.example.com\n"
    write(specs, "sites/zz.yaml", text)
    assert only_problem(specs) == (
        "specs/sites/zz.yaml:11:7: Site/zz: spec.domains[1].hostname: hostname "
        "'SHOP.example.com' is already listed as domains[0]"
    )


def test_two_sites_may_not_share_a_pages_project(specs: Path) -> None:
    write(
        specs,
        "sites/zz.yaml",
        site("zz", "zz.example.com").replace("pages_project: zz", "pages_project: acme-shop"),
    )
    assert only_problem(specs) == (
        "specs/sites/zz.yaml:7:3: Site/zz: spec.pages_project: Pages project 'acme-shop' "
        "already serves Site/acme-shop (specs/sites/acme-shop.yaml:8:3)"
    )
