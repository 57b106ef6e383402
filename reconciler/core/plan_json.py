"""plan_json: a saved plan (``reconciler plan --format json``) read back into a :class:`Plan`.

Pure. Called by ``commands/apply.py`` for ``apply --plan plan.json``; the inverse of
:func:`reconciler.core.render.plan_to_json`, which wrote the document.

Rules:

1. Only ``format_version`` "1" is read; anything else is refused, never guessed.
2. Every action's ``id`` must equal :func:`~reconciler.core.plan.action_identity` of its kind,
   target and ``after``. The id is the intent journal's idempotency key, so a hand-edited
   action would otherwise be executed under another action's key.
3. Actions come back in the document's ``order`` (the planner's dependency order); an id in
   ``order`` without its action, or an action missing from ``order``, is refused.
4. A malformed document raises :class:`PlanError` naming the first bad field, before anything is
   executed; an action's ``after`` is read into its kind's typed payload here
   (:func:`~reconciler.core.payloads.parse_payload`), so one the executor could not act on is
   refused with the others.
5. A saved plan is authenticated: :func:`signed_json` adds ``signature``, an HMAC-SHA256 with the
   operator's key over the canonical JSON of the whole document (so the specs commit, the
   observed digest and every action are bound); :func:`verify_signature` refuses a document
   without one or whose signature does not match, before it is read. The id check of rule 2
   guards against corruption only: anyone can recompute an id, nobody without the key a
   signature.
6. What runs is never the saved document itself: :func:`approved_plan` keeps, from a fresh plan
   made against a fresh observation, exactly the actions the saved plan lists, and refuses the
   whole plan (naming the action and the reason) when any saved action is one the fresh plan
   blocks by a policy gate, plans differently, or does not plan at all (a hostname no spec
   claims or that we do not own, an origin no spec names). Every policy gate and the ownership
   rule are therefore re-checked by the planner itself, never restated here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import TypeVar, cast

from reconciler.core.lane import Lane
from reconciler.core.observed import ObservedDigest
from reconciler.core.payloads import PayloadError, parse_payload
from reconciler.core.plan import (
    FORMAT_VERSION,
    Action,
    ActionKind,
    Blocked,
    Cause,
    JsonValue,
    Note,
    Plan,
    action_identity,
)
from reconciler.errors import PlanError

_E = TypeVar("_E", ActionKind, Cause, Lane)

SIGNATURE_FIELD = "signature"
_SCHEME = "hmac-sha256:"


def _canonical(document: Mapping[str, object]) -> bytes:
    """The bytes a signature covers: the document without its signature, canonical JSON."""
    unsigned = {key: value for key, value in document.items() if key != SIGNATURE_FIELD}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signature_of(document: Mapping[str, object], key: str) -> str:
    """``hmac-sha256:<hex>`` of ``document`` (its ``signature`` field excluded) under ``key``."""
    if not key:
        raise PlanError("a saved plan cannot be signed without a key")
    digest = hmac.new(key.encode(), _canonical(document), hashlib.sha256).hexdigest()
    return _SCHEME + digest


def signed_json(document: Mapping[str, object], key: str) -> str:
    """``document`` with its ``signature`` (rule 5), as stable, indented text."""
    signed = dict(document)
    signed[SIGNATURE_FIELD] = signature_of(document, key)
    return json.dumps(signed, indent=2, sort_keys=True) + "\n"


def verify_signature(document: object, key: str) -> None:
    """Refuse ``document`` unless it carries a valid signature under ``key`` (rule 5).

    Raises:
        PlanError: no key, not a JSON object, no signature, or a signature that does not match.
    """
    root = _object(document, "the plan")
    claimed = root.get(SIGNATURE_FIELD)
    if not isinstance(claimed, str) or not claimed:
        raise PlanError(
            "the saved plan is not signed; only a plan saved with `reconciler plan --format json "
            "--out FILE` under the same RECONCILER_PLAN_KEY can be applied"
        )
    if not hmac.compare_digest(claimed, signature_of(root, key)):
        raise PlanError(
            "the saved plan's signature does not match: it was edited after it was saved, or "
            "signed with another RECONCILER_PLAN_KEY; nothing was applied"
        )


def approved_plan(saved: Plan, fresh: Plan) -> Plan:
    """The fresh plan restricted to the saved plan's actions (rule 6).

    Args:
        saved: the plan read back from the signed document.
        fresh: a plan made now, from the same specs, against a fresh observation.

    Returns:
        ``fresh`` with only the actions ``saved`` lists (in the fresh plan's order).

    Raises:
        PlanError: a saved action the fresh plan does not contain as it is, or whose
            dependencies the saved plan does not also contain; the message names the action and
            the reason.
    """
    current = {action.id: action for action in fresh.actions}
    kept = {action.id for action in saved.actions}
    for action in saved.actions:
        reason = _refusal(action, current.get(action.id), fresh)
        if reason is not None:
            raise PlanError(
                f"the saved plan's {action.kind.value} {action.target} is refused: {reason}; "
                "nothing was applied"
            )
        missing = [dep for dep in current[action.id].depends_on if dep not in kept]
        if missing:
            raise PlanError(
                f"the saved plan's {action.kind.value} {action.target} is refused: it depends on "
                f"action {missing[0]}, which the saved plan leaves out; nothing was applied"
            )
    return replace(fresh, actions=tuple(a for a in fresh.actions if a.id in kept))


def _what(action: Action) -> tuple[object, ...]:
    """What an action does and to whom; its reason and cost forecast are prose and figures."""
    return (action.kind, action.target, action.after, action.before, action.tenant, action.site)


def _refusal(action: Action, current: Action | None, fresh: Plan) -> str | None:
    """Why ``action`` may not run now, or None when the fresh plan calls for it exactly."""
    if current is not None:
        if _what(current) == _what(action):
            return None
        return "a fresh plan plans it differently (what it changes from, or for whom, differs)"
    for blocked in fresh.blocked:
        if blocked.kind is action.kind and blocked.target == action.target:
            return f"blocked by policy now ({blocked.gate}: {blocked.reason})"
    same_target = [a for a in fresh.actions if a.target == action.target]
    if same_target:
        return (
            f"a fresh plan does {same_target[0].kind.value} with other values instead: it is not "
            "what the specs ask for"
        )
    return (
        "a fresh plan made from the specs and the world as observed now does not call for it "
        "(no spec asks for it, or the object is not ours)"
    )


def plan_from_json(document: object) -> Plan:
    """Rebuild the :class:`Plan` a saved JSON document describes.

    Args:
        document: the decoded JSON (``json.loads`` of the saved file).

    Returns:
        The plan, with actions in the saved order.

    Raises:
        PlanError: wrong ``format_version``, a missing or mistyped field, an action whose id
            does not match its content, or an inconsistent ``order``.
    """
    root = _object(document, "the plan")
    version = root.get("format_version")
    if version != FORMAT_VERSION:
        raise PlanError(
            f"the saved plan has format_version {version!r}; this reconciler reads "
            f"{FORMAT_VERSION!r} (re-run `reconciler plan --format json`)"
        )
    listed: dict[str, Action] = {}
    preexisting: set[str] = set()
    annotations: dict[str, str] = {}
    for section in ("changes", "drift"):
        for index, item in enumerate(_list(root, section)):
            where = f"{section}[{index}]"
            action = _action(item, where)
            if action.id in listed:
                raise PlanError(f"{where}: action {action.id} appears twice")
            listed[action.id] = action
            data = _object(item, where)
            if data.get("preexisting") is True:
                preexisting.add(action.id)
            annotation = data.get("annotation")
            if isinstance(annotation, str):
                annotations[action.id] = annotation
    order = [_str_item(value, f"order[{i}]") for i, value in enumerate(_list(root, "order"))]
    missing = [action_id for action_id in order if action_id not in listed]
    if missing:
        raise PlanError(f"order: action {missing[0]} is not among the changes or drift")
    if len(set(order)) != len(order) or set(order) != set(listed):
        raise PlanError("order: must list every action exactly once")
    incomplete = _object(root.get("incomplete", {}), "incomplete")
    return Plan(
        revision=_optional_str(root, "revision"),
        digest=ObservedDigest(_str(root, "observed_digest")),
        planned_at=_number(root, "planned_at"),
        actions=tuple(listed[action_id] for action_id in order),
        blocked=tuple(
            _blocked(item, f"blocked[{i}]") for i, item in enumerate(_list(root, "blocked"))
        ),
        notes=tuple(_note(item, f"notes[{i}]") for i, item in enumerate(_list(root, "notes"))),
        incomplete={key: _str(incomplete, key, "incomplete") for key in incomplete},
        preexisting=frozenset(preexisting),
        annotations=annotations,
    )


def _action(item: object, where: str) -> Action:
    data = _object(item, where)
    kind = _enum(ActionKind, data, "kind", where)
    target = _str(data, "target", where)
    after = _json_object(data.get("after"), f"{where}.after")
    action_id = _str(data, "id", where)
    expected = action_identity(kind, target, after)
    if action_id != expected:
        raise PlanError(
            f"{where}: action id {action_id} does not match its kind, target and after "
            f"(expected {expected}); the saved plan was edited or corrupted"
        )
    calls = _object(data.get("predicted_calls", {}), f"{where}.predicted_calls")
    try:
        payload = parse_payload(kind, after, f"{where}.after")
    except PayloadError as exc:
        raise PlanError(f"{exc}; the saved plan was edited or corrupted") from None
    return Action(
        id=action_id,
        kind=kind,
        target=target,
        tenant=_optional_str(data, "tenant", where),
        site=_optional_str(data, "site", where),
        before=_json_object(data.get("before", {}), f"{where}.before"),
        after=after,
        payload=payload,
        reason=_str(data, "reason", where),
        source=_optional_str(data, "source", where),
        cause=_enum(Cause, data, "cause", where),
        lane=_enum(Lane, data, "lane", where),
        depends_on=tuple(
            _str_item(dep, f"{where}.depends_on[{i}]")
            for i, dep in enumerate(_list(data, "depends_on", where))
        ),
        calls={key: _int(calls, key, f"{where}.predicted_calls") for key in calls},
    )


def _blocked(item: object, where: str) -> Blocked:
    data = _object(item, where)
    return Blocked(
        kind=_enum(ActionKind, data, "kind", where),
        target=_str(data, "target", where),
        tenant=_optional_str(data, "tenant", where),
        site=_optional_str(data, "site", where),
        gate=_str(data, "gate", where),
        reason=_str(data, "reason", where),
        source=_optional_str(data, "source", where),
    )


def _note(item: object, where: str) -> Note:
    data = _object(item, where)
    return Note(
        target=_str(data, "target", where),
        tenant=_optional_str(data, "tenant", where),
        site=_optional_str(data, "site", where),
        category=_str(data, "category", where),
        reason=_str(data, "reason", where),
    )


# --- typed field readers ---------------------------------------------------------------------


def _object(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise PlanError(f"{where}: expected a JSON object")
    return cast(Mapping[str, object], value)


def _list(data: Mapping[str, object], key: str, where: str = "") -> list[object]:
    value = data.get(key)
    if not isinstance(value, list):
        raise PlanError(f"{_at(where, key)}: expected a list")
    return value


def _str(data: Mapping[str, object], key: str, where: str = "") -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise PlanError(f"{_at(where, key)}: expected a string")
    return value


def _str_item(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise PlanError(f"{where}: expected a string")
    return value


def _optional_str(data: Mapping[str, object], key: str, where: str = "") -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise PlanError(f"{_at(where, key)}: expected a string or null")
    return value


def _number(data: Mapping[str, object], key: str, where: str = "") -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlanError(f"{_at(where, key)}: expected a number")
    return float(value)


def _int(data: Mapping[str, object], key: str, where: str = "") -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(f"{_at(where, key)}: expected an integer")
    return value


def _enum(enum: type[_E], data: Mapping[str, object], key: str, where: str) -> _E:
    value = data.get(key)
    try:
        return enum(str(value))
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise PlanError(f"{_at(where, key)}: {value!r} is not one of {allowed}") from None


def _json_object(value: object, where: str) -> dict[str, JsonValue]:
    data = _object(value, where)
    return {key: _json_value(item, f"{where}.{key}") for key, item in data.items()}


def _json_value(value: object, where: str) -> JsonValue:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list):
        return [_json_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        return _json_object(value, where)
    raise PlanError(f"{where}: not a JSON value")


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
