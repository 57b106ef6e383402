"""Whole-fleet checks: what no single document can tell about itself.

Called by ``spec/load.py`` once every document has passed its own validation; calls nothing
but :func:`reconciler.spec.models.normalize_hostname`. The checks:

1. names are unique per kind (the first document, by file and position, keeps the name);
2. every reference resolves: ``Site.spec.tenant`` names a Tenant, ``Tenant.spec.policy`` a
   BillingPolicy;
3. a hostname belongs to at most one site, compared after normalisation (case, IDNA Unicode
   vs punycode form, trailing dot), because that is how Cloudflare compares them;
4. a Cloudflare Pages project serves at most one site.

Each problem is placed on the field that causes it and names the other document involved.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from reconciler.errors import Problem
from reconciler.spec.models import BillingPolicy, Kind, Site, Tenant, Worker

if TYPE_CHECKING:
    from reconciler.spec.validate import LoadedDocument

__all__ = ["check_fleet"]


def check_fleet(
    documents: Sequence[LoadedDocument], declared: Collection[tuple[Kind, str]] = ()
) -> list[Problem]:
    """Return the cross-document problems of a fleet of individually valid documents.

    Args:
        documents: the documents that passed their own validation.
        declared: kind and name of documents that failed it; references to them are not
            reported as dangling, since their own problems already are.
    """
    problems: list[Problem] = []
    ordered = sorted(documents, key=lambda d: (d.source.path, d.source.line, d.source.column))
    first: dict[tuple[Kind, str], LoadedDocument] = {}
    for document in ordered:
        key = (document.kind, document.name)
        earlier = first.get(key)
        if earlier is None:
            first[key] = document
        else:
            problems.append(
                document.problem(
                    "metadata.name",
                    f"{document.kind.value} {document.name!r} is already defined at "
                    f"{earlier.locate()}",
                )
            )
    unique = list(first.values())
    tenants = {d.name for d in unique if isinstance(d.model, Tenant)}
    policies = {d.name for d in unique if isinstance(d.model, BillingPolicy)}
    tenants.update(name for kind, name in declared if kind is Kind.TENANT)
    policies.update(name for kind, name in declared if kind is Kind.BILLING_POLICY)
    claims: dict[str, tuple[LoadedDocument, Site, int]] = {}
    projects: dict[str, LoadedDocument] = {}
    scripts: dict[str, LoadedDocument] = {}
    for document in unique:
        model = document.model
        if isinstance(model, Worker):
            owner = scripts.setdefault(model.spec.script, document)
            if owner is not document:
                problems.append(
                    document.problem(
                        "spec.script",
                        f"Worker script {model.spec.script!r} is already declared by "
                        f"{owner.subject} ({owner.locate('spec.script')})",
                    )
                )
            continue
        if isinstance(model, Tenant) and model.spec.policy not in policies:
            problems.append(
                document.problem(
                    "spec.policy", _dangling("BillingPolicy", model.spec.policy, policies)
                )
            )
        elif isinstance(model, Site):
            if model.spec.tenant not in tenants:
                problems.append(
                    document.problem("spec.tenant", _dangling("Tenant", model.spec.tenant, tenants))
                )
            owner = projects.setdefault(model.spec.pages_project, document)
            if owner is not document:
                problems.append(
                    document.problem(
                        "spec.pages_project",
                        f"Pages project {model.spec.pages_project!r} already serves "
                        f"{owner.subject} ({owner.locate('spec.pages_project')})",
                    )
                )
            problems.extend(_hostname_claims(document, model, claims))
    return problems


def _hostname_claims(
    document: LoadedDocument, site: Site, claims: dict[str, tuple[LoadedDocument, Site, int]]
) -> list[Problem]:
    problems: list[Problem] = []
    for index, domain in enumerate(site.spec.domains):
        canonical = domain.canonical
        claim = claims.get(canonical)
        if claim is None:
            claims[canonical] = (document, site, index)
            continue
        owner, owner_site, owner_index = claim
        if owner is document:
            continue  # listed twice in one site: reported by the Site's own checks
        owner_hostname = owner_site.spec.domains[owner_index].hostname
        form = "" if owner_hostname == domain.hostname else f" as {owner_hostname!r}"
        field = f"spec.domains[{index}].hostname"
        problems.append(
            document.problem(
                field,
                f"hostname {domain.hostname!r} is already claimed by {owner.subject}{form} "
                f"({owner.locate(f'spec.domains[{owner_index}].hostname')}); a hostname "
                "belongs to one site",
            )
        )
    return problems


def _dangling(kind: str, name: str, known: set[str]) -> str:
    message = f"{kind} {name!r} is not defined"
    close = difflib.get_close_matches(name, sorted(known), n=1) if len(known) < 20_000 else []
    if close:
        message += f"; did you mean {close[0]!r}?"
    return message
