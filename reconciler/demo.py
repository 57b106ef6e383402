"""``make demo``: validate the example fleet in ``specs/`` and show its desired state.

Run as ``python -m reconciler.demo [SPECS_DIR]``. Calls :func:`reconciler.spec.load.load_directory`
and prints a readable summary: policies, tenants (with access overrides), sites with their live
versions and domains. Later stages of the demo (sandbox, plan, converge) build on this one.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from reconciler.errors import LoadError, SpecError
from reconciler.spec.load import Specs, load_directory
from reconciler.spec.models import Access, format_duration


def summarize(specs: Specs) -> str:
    """Render the desired state as text, grouped by policy, tenant and site."""
    return "\n".join([*_policies(specs), "", *_tenants(specs), "", *_sites(specs)])


def _policies(specs: Specs) -> list[str]:
    lines = ["Billing policies"]
    for name, policy in specs.policies.items():
        spec = policy.spec
        steps = " -> ".join(f"{step.code} day {step.day}" for step in spec.dunning) or "none"
        budget = spec.performance_budget
        lines.append(
            f"  {name}: soft lock after {spec.grace_days} days, hard lock after "
            f"{spec.hard_lock_days} days past due"
        )
        lines.append(f"    dunning: {steps}")
        lines.append(
            f"    budget: {budget.max_js_kb} KB JS, {budget.max_css_kb} KB CSS, "
            f"{budget.max_third_party_scripts} third-party scripts; domains validate within "
            f"{format_duration(spec.domains.validation_timeout)}"
        )
    return lines


def _tenants(specs: Specs) -> list[str]:
    lines = ["Tenants"]
    for name, tenant in specs.tenants.items():
        spec = tenant.spec
        access = (
            f"access {spec.access.value} (manual override: {spec.access_reason})"
            if spec.access is not Access.AUTO
            else "access follows the policy"
        )
        lines.append(
            f"  {name}: {spec.display_name}, policy {spec.policy}, Stripe {spec.stripe.customer}, "
            f"WhatsApp {spec.whatsapp}"
        )
        lines.append(f"    {access}")
    return lines


def _sites(specs: Specs) -> list[str]:
    lines = ["Sites"]
    for name, site in specs.sites.items():
        spec = site.spec
        versions = f"production v{spec.production.version}"
        if spec.preview is not None:
            versions += f", preview v{spec.preview.version}"
        lines.append(
            f"  {name} (tenant {spec.tenant}, Pages project {spec.pages_project}): {versions}"
        )
        for domain in spec.domains:
            canonical = domain.canonical
            shown = (
                domain.hostname
                if canonical == domain.hostname
                else (f"{domain.hostname} ({canonical})")
            )
            lines.append(f"    https://{shown}  ssl {domain.ssl.method.value}")
        if spec.scripts:
            lines.append(f"    {len(spec.scripts)} third-party script(s)")
        lines.append(f"    removed from Git: {spec.deletion_policy.value}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Validate the example specs and print the summary; 0 when valid, 1 otherwise."""
    args = list(sys.argv[1:] if argv is None else argv)
    root = Path(args[0]) if args else Path("specs")
    print(f"== Validating {root}/ (reconciler validate)")
    try:
        specs = load_directory(root)
    except SpecError as exc:
        for problem in exc.problems:
            print(problem.render())
        return 1
    except LoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{root}/ is valid: {specs.summary()}")
    print()
    print("== Desired state")
    print(summarize(specs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
