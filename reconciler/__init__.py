"""GitOps reconciler for a site-builder SaaS.

Desired state (tenants, sites, domains, live content versions, billing policies) lives as YAML in
Git; the reconciler diffs it against Cloudflare, D1, Stripe and the WhatsApp gateway and applies
what is needed until the world matches. See README.md for the tour and DESIGN notes in docs/.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
