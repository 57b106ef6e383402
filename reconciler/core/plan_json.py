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
   executed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar, cast

from reconciler.core.plan import (
    FORMAT_VERSION,
    Action,
    ActionKind,
    Blocked,
    Cause,
    JsonValue,
    Lane,
    Note,
    Plan,
    action_identity,
)
from reconciler.errors import PlanError

_E = TypeVar("_E", ActionKind, Cause, Lane)


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
        observed_digest=_str(root, "observed_digest"),
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
    return Action(
        id=action_id,
        kind=kind,
        target=target,
        tenant=_optional_str(data, "tenant", where),
        site=_optional_str(data, "site", where),
        before=_json_object(data.get("before", {}), f"{where}.before"),
        after=after,
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
