"""Deletion approvals read from Git commit trailers (``runtime/approvals.py``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from reconciler.runtime.approvals import ApprovalLedger, read_approvals
from reconciler.spec.load import load_directory

EXAMPLE_SPECS = Path(__file__).resolve().parents[2] / "specs"


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def test_trailers_approve_what_they_name_and_nothing_else(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "start")
    base = git(tmp_path, "rev-parse", "HEAD")
    message = (
        "Remove the shop\n\nBody text that mentions Approve-Deletion: Site/not-a-trailer.\n\n"
        "Approve-Deletion: Site/acme-shop\nApprove-Deletion: Hostname/WWW.Example.COM.\n"
        "Approve-Deletion: everything\nSigned-off-by: Test <test@example.com>"
    )
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", message)
    head = git(tmp_path, "rev-parse", "HEAD")[:12]
    found = read_approvals(tmp_path, f"{base}..HEAD")
    assert found.approved == {
        "Hostname/www.example.com": f"commit {head} (Remove the shop)",
        "Site/acme-shop": f"commit {head} (Remove the shop)",
    }
    assert found.ignored == (f"everything (in {head})",)
    assert read_approvals(tmp_path, f"-1 {base}").approved == {}


def test_the_ledger_forgets_an_approval_once_the_resource_is_declared_again() -> None:
    ledger = ApprovalLedger()
    ledger.approved.update(
        {"Site/acme-shop": "commit a", "Site/long-gone": "commit b", "Hostname/acmebakery.com": "c"}
    )
    ledger.prune(load_directory(EXAMPLE_SPECS))  # declares acme-shop and acmebakery.com
    assert ledger.approved == {"Site/long-gone": "commit b"}
