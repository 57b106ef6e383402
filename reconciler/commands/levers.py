"""The runbooks' manual verbs: ``publish``, ``purge``, ``retry-validation``, ``recreate``, ...

Registered by ``cli.py``. Each verb turns its arguments into a
:class:`~reconciler.core.levers.Lever` (a forced intent the pure planner honours or refuses)
and runs ``reconciler apply`` with it (:func:`reconciler.commands.apply.run`): the same
loading, observation, plan, confirmation (or ``--yes``), intent journal, executor, report
and exit codes. Nothing here calls a provider to change anything; the only read is the
Stripe invoice ``sync-billing --invoice`` names, to find its tenant. docs/runbooks.md maps
each runbook endpoint to its verb.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.commands import apply as apply_command
from reconciler.commands import plan as plan_command
from reconciler.commands.common import EXIT_ERROR, error
from reconciler.core.levers import Lever, LeverKind, parse_address
from reconciler.errors import LoadError, ProviderError, SpecError
from reconciler.providers.stripe import StripeBilling
from reconciler.spec.load import Specs
from reconciler.wiring import load_settings

Resolve = Callable[[argparse.Namespace, Specs], Sequence[Lever]]


@dataclass(frozen=True, slots=True)
class Verb:
    """One manual verb: its name, help, positional arguments and how it becomes levers."""

    name: str
    help: str
    runbook: str
    arguments: Callable[[argparse.ArgumentParser], None]
    levers: Resolve


def register(subparsers: Any) -> None:
    """Add every manual verb as a subcommand."""
    for verb in VERBS:
        parser: argparse.ArgumentParser = subparsers.add_parser(
            verb.name,
            help=verb.help,
            description=f"{verb.help} ({verb.runbook}). Shows the plan, asks for confirmation "
            "(unless --yes) and applies it like `reconciler apply`; refused with a reason "
            "when the specs forbid it. Exit 0 applied, 1 error, 3 refused or blocked.",
        )
        verb.arguments(parser)
        _common(parser)
        parser.set_defaults(handler=_runner(verb))


def _common(parser: argparse.ArgumentParser) -> None:
    """The options every verb shares with ``reconciler apply``."""
    parser.add_argument("--specs", default="specs", metavar="DIR", help="specs directory")
    parser.add_argument("--repo", type=Path, help="read the specs from this Git repository")
    parser.add_argument("--ref", help="commit, branch or tag to read with --repo")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--format", choices=("text", "json"), default="text", dest="output")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    parser.add_argument("--now", type=float, default=None, help=argparse.SUPPRESS)
    parser.set_defaults(
        base=None, head=None, out=None, saved_plan=None, allow_mass_deletion=False, target=[]
    )


def _runner(verb: Verb) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        if args.ref is not None and args.repo is None:
            print("error: --ref needs --repo", file=sys.stderr)
            return EXIT_ERROR
        try:
            specs = plan_command.load_specs(args).specs
            args.levers = tuple(verb.levers(args, specs))
        except SpecError:
            return apply_command.run(args)  # prints every problem exactly as apply does
        except (LoadError, ValueError) as exc:
            return error(exc)
        return apply_command.run(args)

    return run


# --------------------------------------------------------------------------- arguments


def _site_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", metavar="SITE", help="the Site spec name")


def _publish_args(parser: argparse.ArgumentParser) -> None:
    _site_args(parser)
    parser.add_argument(
        "--env",
        choices=("production", "preview"),
        help="only this environment (default: every environment of the site)",
    )


def _hostname_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hostname", metavar="HOSTNAME", help="a hostname a Site spec declares")


def _send_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("who", metavar="TENANT|SUBSCRIPTION", help="a tenant or its sub_… id")
    parser.add_argument("--step", metavar="CODE", help="the step code (default: the one due)")


def _retry_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("invoice", metavar="INVOICE", help="the Stripe invoice id (in_…)")
    parser.add_argument("--step", metavar="CODE", required=True, help="the step code to retry")


def _sync_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--tenant", metavar="TENANT")
    group.add_argument("--subscription", metavar="SUB", help="a Stripe subscription id")
    group.add_argument("--invoice", metavar="INVOICE", help="a Stripe invoice id")


def _tenants_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tenants", nargs="*", metavar="TENANT", help="default: every tenant")


def _address_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("address", metavar="KIND/NAME", help="Site/NAME[:env] or Hostname/NAME")


# --------------------------------------------------------------------------- resolution


def _publish(args: argparse.Namespace, specs: Specs) -> Sequence[Lever]:
    site = _site(specs, args.site)
    return (Lever(LeverKind.PUBLISH, f"Site/{site}" + (f":{args.env}" if args.env else "")),)


def _purge(args: argparse.Namespace, specs: Specs) -> Sequence[Lever]:
    return (Lever(LeverKind.PURGE, f"Site/{_site(specs, args.site)}"),)


def _retry_validation(args: argparse.Namespace, specs: Specs) -> Sequence[Lever]:
    return (Lever(LeverKind.RETRY_VALIDATION, parse_address(f"Hostname/{args.hostname}")),)


def _recreate(args: argparse.Namespace, specs: Specs) -> Sequence[Lever]:
    return (Lever(LeverKind.RECREATE, parse_address(f"Hostname/{args.hostname}")),)


def _send_dunning(args: argparse.Namespace, specs: Specs) -> Sequence[Lever]:
    tenant = _tenant(specs, args.who)
    return (Lever(LeverKind.SEND_DUNNING, f"Tenant/{tenant}", step=args.step),)


def _retry_dunning(args: argparse.Namespace, specs: Specs) -> Sequence[Lever]:
    return (Lever(LeverKind.SEND_DUNNING, f"Invoice/{args.invoice}:{args.step}"),)


def _sync_billing(args: argparse.Namespace, specs: Specs) -> Sequence[Lever]:
    if args.invoice is not None:
        tenant = _tenant_of_invoice(specs, args.invoice)
    else:
        tenant = _tenant(specs, args.tenant or args.subscription)
    return (Lever(LeverKind.SYNC_BILLING, f"Tenant/{tenant}"),)


def _enforce(args: argparse.Namespace, specs: Specs) -> Sequence[Lever]:
    names = [_tenant(specs, name) for name in args.tenants] or sorted(specs.tenants)
    return tuple(Lever(LeverKind.ENFORCE, f"Tenant/{name}") for name in names)


def _clear_stuck(args: argparse.Namespace, specs: Specs) -> Sequence[Lever]:
    address = parse_address(args.address)
    if not address.startswith(("Site/", "Hostname/")):
        raise ValueError(f"{address}: only a Site/ or a Hostname/ can be stuck")
    return (Lever(LeverKind.CLEAR_STUCK, address),)


def _site(specs: Specs, name: str) -> str:
    if name not in specs.sites:
        known = ", ".join(sorted(specs.sites)[:5]) or "none"
        raise ValueError(f"no Site {name!r} in the specs (sites: {known}…)")
    return name


def _tenant(specs: Specs, who: str) -> str:
    """A tenant by name, or the tenant whose spec names the subscription ``who``."""
    if who in specs.tenants:
        return who
    for name, tenant in sorted(specs.tenants.items()):
        if who and tenant.spec.stripe.subscription == who:
            return name
    raise ValueError(f"no Tenant {who!r} in the specs, and no tenant has subscription {who!r}")


def _tenant_of_invoice(specs: Specs, invoice: str) -> str:
    """Read the invoice from Stripe (read-only) and name the tenant of its customer."""
    settings = load_settings()
    if not settings.stripe.api_key:
        raise ValueError("STRIPE_API_KEY is not set: cannot read invoice " + invoice)

    async def read() -> str:
        async with StripeBilling(settings.stripe) as stripe:
            return (await stripe.invoice(invoice)).customer

    try:
        customer = asyncio.run(read())
    except ProviderError as exc:
        raise ValueError(f"cannot read invoice {invoice} from Stripe: {exc}") from exc
    for name, tenant in sorted(specs.tenants.items()):
        if tenant.spec.stripe.customer == customer:
            return name
    raise ValueError(f"invoice {invoice} belongs to customer {customer}, which no tenant names")


VERBS: tuple[Verb, ...] = (
    Verb("publish", "requeue a publish, or redeploy the live version", "runbook 1",
         _publish_args, _publish),
    Verb("purge", "purge a site's hosts from Cloudflare's cache", "runbook 1", _site_args,
         _purge),
    Verb("retry-validation", "re-trigger a pending hostname's validation now", "runbook 2",
         _hostname_args, _retry_validation),
    Verb("recreate", "delete and create a hostname again now", "runbook 2", _hostname_args,
         _recreate),
    Verb("send-dunning", "send a dunning step now", "runbook 3", _send_args, _send_dunning),
    Verb("retry-dunning", "retry a failed dunning step", "runbook 8", _retry_args,
         _retry_dunning),
    Verb("sync-billing", "mirror one tenant's Stripe subscription and invoices now",
         "runbooks 3 and 7", _sync_args, _sync_billing),
    Verb("enforce", "apply the access policy (locks) now", "runbook 3", _tenants_args,
         _enforce),
    Verb("clear-stuck", "try a stuck publish or hostname once more, past its cap",
         "runbooks 1 and 2", _address_args, _clear_stuck),
)  # fmt: skip
