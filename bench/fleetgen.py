"""Generate a realistic fleet of spec documents, deterministic from a seed.

Used by ``bench/bench_validate.py`` and, later, by the plan/apply benchmarks and tests that need
a big fleet. :func:`build` returns the documents in memory (plain dicts, grouped by file path
relative to the specs root); :func:`generate` writes them as YAML files under a directory in the
same layout as the example fleet (``policies/``, ``tenants/``, ``sites/``), each file with the
yaml-language-server modeline.

Shape: three billing policies; about one tenant per two sites (each tenant owns one to three
sites); about 1.5 custom domains per site, a mix of http and txt validation, roughly 1% of them
internationalised (Unicode) names; E.164 WhatsApp numbers that ``phonenumbers`` accepts.

CLI: ``python -m bench.fleetgen OUT_DIR --sites 10000 --seed 1``.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

API_VERSION = "sitebuilder/v1"
POLICIES = ("standard", "pro", "enterprise")
_TLDS = ("com", "com.br", "pt", "es", "io", "shop", "store", "cafe", "studio", "net")
_WORDS = (
    "acme", "bistro", "lumen", "nova", "verde", "sol", "mar", "pixel", "aurora", "atlas",
    "delta", "folha", "casa", "rio", "onda", "luz", "trigo", "vela", "prado", "cedro",
)  # fmt: skip
_IDN_WORDS = ("café", "pão", "açaí", "müller", "señor", "bistrô")
_SCRIPTS = (
    "https://www.googletagmanager.com/gtag/js?id=G-{code}",
    "https://widgets.thefork.com/booking.js",
    "https://js.stripe.com/v3/",
    "https://cdn.jsdelivr.net/npm/lightbox2@2/dist/js/lightbox.min.js",
)
_SUFFIXES = ("home", "shop", "blog", "menu", "events", "portfolio")
_MODELINE = "# yaml-language-server: $schema=../../schemas/{schema}.schema.json\n"


@dataclass(frozen=True)
class Fleet:
    """Generated documents by file path (relative to the specs root), with counts."""

    files: dict[str, list[dict[str, Any]]]
    tenants: int
    sites: int
    policies: int
    domains: int


def _policy(name: str, index: int) -> dict[str, Any]:
    grace = (7, 14, 21)[index]
    return {
        "apiVersion": API_VERSION,
        "kind": "BillingPolicy",
        "metadata": {"name": name},
        "spec": {
            "grace_days": grace,
            "hard_lock_days": grace * 3,
            "dunning": [
                {"code": "D0", "day": 0, "template": "payment-failed"},
                {"code": f"D{grace // 2}", "day": grace // 2, "template": "reminder"},
                {"code": f"D{grace}", "day": grace, "template": "soft-locked"},
                {"code": f"D{grace * 3}", "day": grace * 3, "template": "hard-locked"},
            ],
            "templates": {
                "payment-failed": "Hi {tenant_name}, we could not charge {amount_due} "
                "{currency} for invoice {invoice_id}: {invoice_url}",
                "reminder": "{tenant_name}, invoice {invoice_id} is {days_past_due} days past "
                "due; editing pauses on {soft_lock_date}. {invoice_url}",
                "soft-locked": "{tenant_name}, editing is paused until invoice {invoice_id} is "
                "paid; sites go offline on {hard_lock_date}. {invoice_url}",
                "hard-locked": "{tenant_name}, your sites are suspended: pay {amount_due} "
                "{currency} to restore them. {invoice_url}",
            },
            "performance_budget": {
                "max_js_kb": 300 * (index + 1),
                "max_css_kb": 100 * (index + 1),
                "max_third_party_scripts": 3 * (index + 1),
            },
            "domains": {
                "validation_timeout": f"{24 * (index + 1)}h",
                "ssl_timeout": "12h",
                "max_recreates": 3 + index,
            },
            "suspension_origin": "suspended.sitebuilder.app",
        },
    }


def _phone(rng: random.Random) -> str:
    country = rng.randrange(3)
    if country == 0:
        return "+55119" + "".join(str(rng.randrange(10)) for _ in range(8))
    if country == 1:
        return (
            "+3519"
            + str(rng.choice((1, 2, 3, 6)))
            + "".join(str(rng.randrange(10)) for _ in range(7))
        )
    return "+346" + "".join(str(rng.randrange(10)) for _ in range(8))


def build(sites: int, seed: int = 0) -> Fleet:
    """Return a fleet of ``sites`` sites with their tenants, policies and domains, in memory."""
    rng = random.Random(seed)
    files: dict[str, list[dict[str, Any]]] = {}
    for index, name in enumerate(POLICIES):
        files[f"policies/{name}.yaml"] = [_policy(name, index)]
    tenant_count = 0
    site_count = 0
    domain_count = 0
    while site_count < sites:
        tenant_count += 1
        word = rng.choice(_WORDS)
        tenant = f"{word}-{tenant_count:05d}"
        spec: dict[str, Any] = {
            "display_name": f"{word.title()} {rng.choice(('Bakery', 'Studio', 'Bistro', 'Shop'))}"
            f" {tenant_count}",
            "policy": rng.choices(POLICIES, weights=(70, 25, 5))[0],
            "stripe": {
                "customer": f"cus_{tenant_count:06d}",
                "subscription": f"sub_{tenant_count:06d}",
            },
            "whatsapp": _phone(rng),
        }
        if rng.random() < 0.01:
            spec["access"] = "active"
            spec["access_reason"] = "Manual override: paying by bank transfer"
        files[f"tenants/{tenant}.yaml"] = [
            {
                "apiVersion": API_VERSION,
                "kind": "Tenant",
                "metadata": {"name": tenant},
                "spec": spec,
            }
        ]
        for suffix in rng.sample(_SUFFIXES, k=min(rng.choice((1, 1, 2, 2, 3)), sites - site_count)):
            site_count += 1
            site = f"{tenant}-{suffix}"
            document, domains = _site(rng, site, tenant, word, suffix)
            domain_count += domains
            files[f"sites/{site}.yaml"] = [document]
    return Fleet(files, tenant_count, site_count, len(POLICIES), domain_count)


def _site(
    rng: random.Random, site: str, tenant: str, word: str, suffix: str
) -> tuple[dict[str, Any], int]:
    version = rng.randrange(1, 60)
    spec: dict[str, Any] = {
        "tenant": tenant,
        "pages_project": site,
        "production": {"version": version},
    }
    if rng.random() < 0.3:
        spec["preview"] = {"version": version + 1}
    count = rng.choice((0, 1, 1, 2, 2, 3))
    if count:
        base_word = rng.choice(_IDN_WORDS) if rng.random() < 0.01 else word
        base = f"{base_word}-{site.rsplit('-', 2)[1]}-{suffix}.{rng.choice(_TLDS)}"
        hosts = [base, f"www.{base}", f"shop.{base}"][:count]
        spec["domains"] = [
            {"hostname": host}
            if rng.random() < 0.7
            else {"hostname": host, "ssl": {"method": "txt"}}
            for host in hosts
        ]
    if rng.random() < 0.5:
        spec["scripts"] = [
            template.format(code=f"{rng.randrange(10**6):06d}")
            for template in rng.sample(_SCRIPTS, k=rng.randrange(1, 3))
        ]
    if rng.random() < 0.2:
        spec["deletion_policy"] = "delete"
    document = {"apiVersion": API_VERSION, "kind": "Site", "metadata": {"name": site}, "spec": spec}
    return document, count


_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def render(path: str, documents: list[dict[str, Any]]) -> str:
    """Render one file's documents as YAML text, with the schema modeline for its kind."""
    schema = str(documents[0]["kind"]).lower()
    body = yaml.dump_all(
        documents, Dumper=_DUMPER, sort_keys=False, allow_unicode=True, default_flow_style=False
    )
    return _MODELINE.format(schema=schema) + body


def generate(root: Path, sites: int, seed: int = 0) -> Fleet:
    """Write a generated fleet as YAML files under ``root`` (created if needed)."""
    fleet = build(sites, seed)
    for directory in {Path(path).parent for path in fleet.files}:
        (root / directory).mkdir(parents=True, exist_ok=True)
    for path, documents in fleet.files.items():
        (root / path).write_text(render(path, documents), encoding="utf-8")
    return fleet


def main(argv: list[str] | None = None) -> int:
    """Command line: write a fleet into a directory and print its counts."""
    parser = argparse.ArgumentParser(description="Generate a fleet of spec files.")
    parser.add_argument("out", type=Path, help="specs directory to write")
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    fleet = generate(args.out, args.sites, args.seed)
    print(
        f"wrote {len(fleet.files)} files to {args.out}: {fleet.tenants} tenants, "
        f"{fleet.policies} policies, {fleet.sites} sites, {fleet.domains} domains"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
