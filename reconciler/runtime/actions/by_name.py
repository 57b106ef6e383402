"""One typed value made from another by field name: the handlers' record-shaped copies.

A handler often writes a D1 record (``HostnameFacts``, ``BuildSizes``) or a core value
(``MediaWeight``) whose every field stands, under the same name, on what it already holds (a
payload, a build's output). :func:`copy_fields` makes it from those fields, so the list of
fields lives once, in the target's declaration.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["copy_fields"]

_T = TypeVar("_T", bound="DataclassInstance")


def copy_fields(cls: type[_T], source: object) -> _T:
    """A ``cls`` whose every field is the attribute of that name on ``source``.

    Raises:
        AttributeError: ``source`` lacks one of ``cls``'s fields.
    """
    values = {spec.name: getattr(source, spec.name) for spec in dataclasses.fields(cls)}
    return cls(**values)
