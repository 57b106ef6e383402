"""``make demo`` end to end: ``python -m reconciler.demo`` in a subprocess tells the whole story.

Runs the demo against the repository's example specs with a temporary working directory (so
its ``.demo/`` scratch space is the test's), then checks the lines each chapter must print.
The demo starts localstripe and the simulators itself, on loopback only.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 300  # seconds; the story takes a few seconds, a noisy CI machine may be slow


def test_make_demo_tells_the_whole_story_and_every_chapter_converges(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler.demo", str(REPO / "specs")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    for number in range(1, 12):
        assert f"== Chapter {number}:" in out
    assert out.count(">> Converged:") == 11
    # The visitor's view through the dispatch Worker in workerd, at each chapter.
    page = "GET https://www.acmebakery.com/ -> 200, the page of acme-home version {}"
    assert out.count(page.format(12)) == 2 and out.count(page.format(13)) == 1
    suspended = "GET https://www.lumenstudio.photo/ -> 503, the suspension page"
    assert suspended in out
    assert "GET https://www.lumenstudio.photo/ -> 200, the page of lumen-portfolio" in out
    assert "GET https://shop.acmebakery.com/ -> 530, not found" in out
    # Chapter 3: plan, apply, and a second plan with nothing to do.
    # 19 actions, the platform (namespace, Worker, route) and one routing write per tenant
    assert "Apply: 25 applied." in out
    assert "No changes. The world matches the specs." in out
    # Chapters 4 and 5: the bump is published, the revert rolls back without a build.
    assert "publish production version 13" in out
    assert re.search(r"\[reverts [0-9a-f]{7} \(Bump acme-home to 13\)\]", out)
    rollback = re.search(r"still (\d+) deployments in Pages \(no new build\)", out)
    published = re.search(r"serves version 13 \(deployment [0-9a-f]{8}\); (\d+) deployments", out)
    assert rollback and published and rollback.group(1) == published.group(1)
    # Chapter 6: dunning, locks as the clock advances, payment and unlock.
    assert "soft lock tenant (active -> soft_locked)" in out
    assert "hard lock tenant (soft_locked -> hard_locked)" in out
    assert "lumenstudio.photo: active, routing table: suspend" in out
    assert "unlock tenant (hard_locked -> active)" in out
    assert "dunning sent once each: D0, D3, D7, D21" in out
    assert out.count("WhatsApp gateway (simulator) sent to +34612345678:") == 4
    # Chapter 7: retry, recreations, Stuck naming the DNS record, recovery.
    assert "retry validation of order.acmebakery.com" in out
    assert "(recreation 3 of 3)" in out
    assert "blocked (stuck): recreate hostname order.acmebakery.com" in out
    assert "a CNAME record for order.acmebakery.com" in out
    assert "order.acmebakery.com is active after 3 recreations" in out
    # Chapter 8: photos from R2 as AVIF/WebP pictures, bytes saved, a script removed.
    assert re.search(r"R2: \d+ photos \([\d.]+ MB of JPEG, PNG and WebP originals\)", out)
    assert re.search(r"bytes: [\d,.]+ KB of originals -> [\d,.]+ KB served .* saved", out)
    assert '<picture><source type="image/avif" srcset="/assets/img/' in out
    assert re.search(r"Every one of its \d+ AVIF and WebP sources is a file of the deployment", out)
    assert "scripts changed: removed https://www.googletagmanager.com/gtag/js?id=G-ACME01" in out
    # Chapter 9: the API Worker's broken version turned back by its health check, then reverted.
    assert "answered 500 (expected 200); traffic returned to version 2 at 100 %" in out
    assert "x blocked (health check failed): deploy worker version api" in out
    assert "$ git revert --no-edit HEAD" in out
    # Chapter 10: a migration applied, then undone to its restore point.
    assert "restore point before 9001_tenant_plans.sql: " in out
    assert "migrations undone (1):\n    9001_tenant_plans.sql" in out
    assert not (tmp_path / ".demo").exists() or not any((tmp_path / ".demo").iterdir())
