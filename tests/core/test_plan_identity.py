"""Build identity in the planner: a publish follows every build input, and only a change.

Literal inputs, like test_plan.py. The live publish row records the identity of its build
(content digest, scripts, builder fingerprint); the observation says what a build would be
made of now (``SiteLedger.content_digests``, ``Observed.builder``). Unchanged inputs plan
nothing; each changed input plans a publish whose reason names it; a failure recorded for
other inputs than today's does not block (a version fixed in place is rebuilt).
"""

from __future__ import annotations

from dataclasses import replace

from test_plan import converged_world

from reconciler.core.desired import derive
from reconciler.core.identity import BuildInputs, describe_changes, inputs_from_json, is_stale
from reconciler.core.observed import BuildPreview, Observed, PublishRecord
from reconciler.core.plan import ActionKind, Plan, build_plan

from support.core import NOW, deployment, ledger, project, site_yaml, specs_from, tenant_yaml

BUILDER = "sitebuilder-build/2 encoder/0123456789abcdef"
GTAG = "https://www.googletagmanager.com/gtag/js?id=G-1"
CHAT = "https://chat.example.com/widget.js"
OLD = "a" * 64
NEW = "b" * 64


def inputs(*, content: str = OLD, scripts: tuple[str, ...] = (GTAG,), version: int = 2,
           builder: str = BUILDER) -> BuildInputs:  # fmt: skip
    return BuildInputs("acme-home", version, content, scripts, builder)


def row(built: BuildInputs, *, status: str = "live", error: str | None = None) -> PublishRecord:
    return PublishRecord(
        site="acme-home",
        environment="production",
        version=built.version,
        status=status,
        deployment_id="dep-2" if status == "live" else None,
        attempts=1,
        error_message=error,
        created_at=NOW - 60,
        build_identity=built.identity,
        build_inputs=built,
    )


def world(
    live: BuildInputs | None = None,
    *,
    digest: str = OLD,
    latest: PublishRecord | None = None,
    builder: str = BUILDER,
    **more: object,
) -> Observed:
    live_row = row(live or inputs())
    site = ledger(live=2, deployment_id="dep-2", versions=frozenset({1, 2, 3}))
    site = replace(
        site,
        live={"production": live_row},
        latest={"production": latest or live_row},
        content_digests={2: digest, 3: "c" * 64},
    )
    return replace(converged_world(**more), ledger={"acme-home": site}, builder=builder)


def plan(observed: Observed, *, scripts: tuple[str, ...] = (GTAG,), version: int = 2) -> Plan:
    specs = specs_from(
        tenants={"acme": tenant_yaml("acme", customer="cus_acme")},
        sites={"acme-home": site_yaml("acme-home", version=version, scripts=scripts)},
    )
    return build_plan(derive(specs, observed.billing, now=NOW), observed)


def publishes(result: Plan) -> list[str]:
    return [a.reason for a in result.actions if a.kind is ActionKind.PUBLISH]


def test_unchanged_inputs_plan_nothing() -> None:
    assert plan(world()).is_empty


def test_removing_a_script_republishes_the_live_version_and_says_which_script() -> None:
    [reason] = publishes(plan(world(), scripts=()))
    assert reason.startswith("production is at version 2, but its build inputs changed: ")
    assert f"scripts changed: removed {GTAG}" in reason


def test_adding_a_script_names_it() -> None:
    [reason] = publishes(plan(world(), scripts=(GTAG, CHAT)))
    assert f"scripts changed: added {CHAT}" in reason


def test_content_fixed_in_place_republishes_the_same_version() -> None:
    result = plan(world(digest=NEW))
    [action] = [a for a in result.actions if a.kind is ActionKind.PUBLISH]
    assert action.after["version"] == 2
    assert "content of version 2 edited in place (sha256 aaaaaaaaaaaa -> bbbbbbbbbbbb)" in (
        action.reason
    )
    assert action.after["build_identity"] == inputs(content=NEW).identity


def test_a_new_builder_or_encoder_republishes_with_that_reason() -> None:
    [reason] = publishes(plan(world(builder="sitebuilder-build/3 encoder/ffff")))
    assert f"builder changed ({BUILDER} -> sitebuilder-build/3 encoder/ffff)" in reason


def test_without_a_recorded_identity_the_version_alone_decides() -> None:
    legacy = replace(row(inputs()), build_identity=None, build_inputs=None)
    observed = world()
    site = replace(observed.ledger["acme-home"], live={"production": legacy})
    assert plan(replace(observed, ledger={"acme-home": site}), scripts=()).is_empty


def test_without_a_builder_fingerprint_nothing_is_compared() -> None:
    assert plan(world(builder=""), scripts=()).is_empty


def test_a_stale_live_build_is_not_rolled_back_to_an_untagged_or_other_build() -> None:
    other = replace(deployment("dep-old", version=2, at=5.0), build="0" * 12)
    untagged = deployment("dep-untagged", version=2, at=6.0)
    projects = {
        "acme-home": project(serving="dep-2", deployments=(untagged, other)),
    }
    result = plan(world(projects=projects), scripts=())
    assert [a.kind for a in result.actions] == [ActionKind.PUBLISH]


def test_a_deployment_of_the_wanted_build_is_rolled_back_to_without_a_rebuild() -> None:
    wanted = inputs(scripts=())
    ready = replace(deployment("dep-ready", version=2, at=9.0), build=wanted.identity[:12])
    projects = {"acme-home": project(serving="dep-2", deployments=(ready,))}
    result = plan(world(projects=projects), scripts=())
    assert [(a.kind, a.after.get("deployment_id")) for a in result.actions] == [
        (ActionKind.ROLLBACK, "dep-ready")
    ]


BROKEN = "build failed: missing asset: 'acme-home/hero.jpg' not found in the asset store"


def failed_v3(content: str) -> PublishRecord:
    return row(inputs(content=content, version=3), status="failed", error=BROKEN)


def test_a_build_failure_for_the_same_inputs_stays_blocked() -> None:
    result = plan(world(latest=failed_v3("c" * 64)), version=3)
    assert [b.gate for b in result.blocked] == ["build"]
    assert not publishes(result)


def test_a_version_fixed_in_place_is_rebuilt_not_left_blocked_on_the_old_failure() -> None:
    result = plan(world(latest=failed_v3("d" * 64)), version=3)
    assert result.blocked == ()
    [action] = [a for a in result.actions if a.kind is ActionKind.PUBLISH]
    assert action.after["attempt"] == 1


def test_a_build_failure_whose_in_memory_build_now_succeeds_is_retried() -> None:
    fixed = BuildPreview("acme-home", 3, "h3", js_kb=1, css_kb=1, third_party_scripts=1)
    observed = world(latest=failed_v3("c" * 64), builds={("acme-home", 3): fixed})
    result = plan(observed, version=3)
    assert result.blocked == ()
    assert len(publishes(result)) == 1


def test_inputs_survive_their_json_and_malformed_json_reads_as_none() -> None:
    built = inputs(scripts=(GTAG, CHAT))
    assert inputs_from_json(built.to_json()) == built
    assert inputs_from_json('{"site": 1}') is None
    assert inputs_from_json("not json") is None
    assert inputs_from_json(None) is None


def test_every_input_changes_the_identity_and_is_described() -> None:
    base = inputs()
    variants = [
        inputs(content=NEW),
        inputs(scripts=()),
        inputs(builder="other"),
        inputs(version=3),
    ]
    assert len({base.identity, *(v.identity for v in variants)}) == 5
    assert describe_changes(base, base) == ()
    assert all(describe_changes(base, v) for v in variants)
    assert describe_changes(inputs(scripts=(GTAG, CHAT)), inputs(scripts=(CHAT, GTAG))) == (
        "scripts changed: reordered",
    )


def test_recorded_inputs_give_the_identity_s_answer_and_an_unreadable_row_falls_back() -> None:
    base = inputs()
    for wanted in (base, inputs(content=NEW), inputs(scripts=()), inputs(builder="other")):
        by_identity = is_stale(base.identity, wanted)
        assert by_identity == (wanted != base)
        assert is_stale(base.identity, wanted, base) == by_identity
    assert not is_stale(None, base, base)  # a row from before identities: the version decides
    assert not is_stale(base.identity, None, base)  # today's inputs not all known
