"""The local world: simulators of Cloudflare and Evolution API, localstripe, a virtual clock."""
