"""Content snapshot parsing: valid snapshots load; each invalid block names its place precisely."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.build.content import ContentSnapshot, parse_snapshot, snapshot_from_data
from reconciler.build.errors import MAX_MESSAGE_CHARS, BuildError, BuildFailure
from reconciler.errors import ReconcilerError

REPO_ROOT = Path(__file__).resolve().parents[2]


def _error_for(data: dict[str, Any]) -> BuildError:
    with pytest.raises(BuildError) as caught:
        parse_snapshot(json.dumps(data))
    return caught.value


def _one_block(block: dict[str, Any]) -> dict[str, Any]:
    return {"format": 1, "pages": [{"path": "/", "title": "Home", "blocks": [block]}]}


def test_a_valid_snapshot_parses_into_frozen_models(sample: dict[str, Any]) -> None:
    snapshot = parse_snapshot(json.dumps(sample).encode("utf-8"))
    assert [page.path for page in snapshot.pages] == ["/", "/contact"]
    assert [block.type for block in snapshot.pages[0].blocks] == [
        "hero",
        "text",
        "image",
        "gallery",
        "footer",
    ]
    with pytest.raises(ValidationError):
        snapshot.pages[0].title = "changed"  # type: ignore[misc]


def test_build_error_is_a_reconciler_error_with_a_message() -> None:
    error = _error_for({"format": 1})
    assert isinstance(error, ReconcilerError)
    assert error.reason is BuildFailure.INVALID_CONTENT
    assert error.message == "invalid content: pages: Field required"
    assert str(error) == error.message


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            {"type": "hero"},
            "invalid content: pages[0].blocks[0] (hero): heading: Field required",
        ),
        (
            {"type": "hero", "heading": "Hi", "cta": {"label": "Go", "url": "javascript:alert(1)"}},
            "invalid content: pages[0].blocks[0] (hero): cta.url: 'javascript:alert(1)' is not "
            "a link this builder allows (https://, http://, mailto:, tel:, a /path or a #anchor)",
        ),
        (
            {"type": "text", "text": ""},
            "invalid content: pages[0].blocks[0] (text): text: "
            "String should have at least 1 character",
        ),
        (
            {"type": "image", "asset": "img/a.png"},
            "invalid content: pages[0].blocks[0] (image): alt: Field required",
        ),
        (
            {"type": "image", "asset": "../etc/passwd", "alt": "x"},
            "invalid content: pages[0].blocks[0] (image): asset: String should match pattern",
        ),
        (
            {"type": "gallery", "images": []},
            "invalid content: pages[0].blocks[0] (gallery): images: "
            "List should have at least 1 item after validation, not 0",
        ),
        (
            {"type": "gallery", "images": [{"asset": "a.png", "alt": "a"}, {"asset": "b.png"}]},
            "invalid content: pages[0].blocks[0] (gallery): images[1].alt: Field required",
        ),
        (
            {
                "type": "contact_form",
                "fields": [{"name": "name", "label": "Name"}],
                "target": "sms",
                "recipient": "+15551234567",
            },
            "invalid content: pages[0].blocks[0] (contact_form): target: "
            "Input should be 'whatsapp' or 'email'",
        ),
        (
            {
                "type": "contact_form",
                "fields": [{"name": "name", "label": "Name"}],
                "target": "whatsapp",
                "recipient": "555-1234",
            },
            "invalid content: pages[0].blocks[0] (contact_form): recipient '555-1234' is not "
            "an E.164 number like +15551234567",
        ),
        (
            {
                "type": "contact_form",
                "fields": [{"name": "a", "label": "A"}, {"name": "a", "label": "B"}],
                "target": "email",
                "recipient": "shop@example.com",
            },
            "invalid content: pages[0].blocks[0] (contact_form): "
            "field names must be unique, repeated: a",
        ),
        (
            {"type": "footer", "links": [{"label": "x", "url": "data:text/html,hi"}]},
            "invalid content: pages[0].blocks[0] (footer): links[0].url: 'data:text/html,hi' "
            "is not a link this builder allows",
        ),
        (
            {"type": "embed", "script_url": "http://widgets.example.com/w.js", "height": 300},
            "invalid content: pages[0].blocks[0] (embed): script_url: only https:// URLs are "
            "allowed, got 'http://widgets.example.com/w.js'",
        ),
        (
            {"type": "embed", "script_url": "https://widgets.example.com/w.js", "height": "300"},
            "invalid content: pages[0].blocks[0] (embed): height: Input should be a valid integer",
        ),
        (
            {"type": "video", "url": "https://example.com/v.mp4"},
            "invalid content: pages[0].blocks[0]: Input tag 'video' found using 'type' does not "
            "match any of the expected tags:",
        ),
        (
            {"type": "text", "text": "hi", "colour": "red"},
            "invalid content: pages[0].blocks[0] (text): colour: Extra inputs are not permitted",
        ),
    ],
)
def test_each_invalid_block_gives_a_precise_message(block: dict[str, Any], expected: str) -> None:
    error = _error_for(_one_block(block))
    assert error.message.startswith(expected), error.message
    assert error.reason is BuildFailure.INVALID_CONTENT


def test_the_block_index_counts_from_the_page_it_is_on(sample: dict[str, Any]) -> None:
    del sample["pages"][1]["blocks"][0]["recipient"]
    error = _error_for(sample)
    assert error.message == (
        "invalid content: pages[1].blocks[0] (contact_form): recipient: Field required"
    )


def test_invalid_json_is_reported_as_invalid_json() -> None:
    with pytest.raises(BuildError) as caught:
        parse_snapshot('{"format": 1, "pages": [')
    assert caught.value.message.startswith("invalid content: content_json is not valid JSON: ")


def test_invalid_utf8_is_a_build_error_not_a_crash() -> None:
    with pytest.raises(BuildError) as caught:
        parse_snapshot(b"\xff\xfe{}")
    assert caught.value.reason is BuildFailure.INVALID_CONTENT


def test_a_snapshot_without_a_home_page_is_rejected(sample: dict[str, Any]) -> None:
    sample["pages"] = sample["pages"][1:]
    assert _error_for(sample).message == (
        "invalid content: the site needs a home page with path '/'"
    )


def test_duplicate_page_paths_and_asset_keys_are_rejected(sample: dict[str, Any]) -> None:
    sample["pages"][1]["path"] = "/"
    assert "page paths must be unique, repeated: /" in _error_for(sample).message
    sample["pages"][1]["path"] = "/contact"
    sample["assets"].append(dict(sample["assets"][0]))
    assert "asset keys must be unique, repeated: img/logo.png" in _error_for(sample).message


def test_the_assets_path_is_reserved_for_the_site_files(sample: dict[str, Any]) -> None:
    sample["pages"][1]["path"] = "/assets/media"
    assert _error_for(sample).message == (
        "invalid content: pages[1]: path '/assets/media' is reserved for the site's files"
    )


def test_a_wrong_format_version_is_rejected(sample: dict[str, Any]) -> None:
    sample["format"] = 2
    assert _error_for(sample).message == "invalid content: format: Input should be 1"


def test_more_than_five_problems_are_summarised_in_one_line() -> None:
    blocks = [{"type": "image", "asset": f"a{i}.png"} for i in range(8)]
    data = {"format": 1, "pages": [{"path": "/", "title": "Home", "blocks": blocks}]}
    error = _error_for(data)
    assert error.message.count("alt: Field required") == 5
    assert error.message.endswith("; and 3 more problems")
    assert "\n" not in error.message


def test_error_messages_are_bounded_for_the_error_message_column() -> None:
    long_text = "x" * 5000
    error = _error_for(_one_block({"type": "footer", "links": [{"label": "a", "url": long_text}]}))
    assert len(error.message) <= MAX_MESSAGE_CHARS


def test_an_oversized_snapshot_is_refused_before_parsing() -> None:
    with pytest.raises(BuildError) as caught:
        parse_snapshot(b" " * (5 * 1024 * 1024 + 1))
    assert "over the limit of" in caught.value.message


def test_snapshot_from_data_validates_like_parse_snapshot(sample: dict[str, Any]) -> None:
    assert snapshot_from_data(sample) == parse_snapshot(json.dumps(sample))
    del sample["pages"][0]["blocks"][2]["alt"]
    with pytest.raises(BuildError) as caught:
        snapshot_from_data(sample)
    assert (
        caught.value.message == "invalid content: pages[0].blocks[2] (image): alt: Field required"
    )


def test_the_schema_has_a_discriminator_titles_and_descriptions() -> None:
    schema = ContentSnapshot.model_json_schema()
    assert schema["title"] == "ContentSnapshot"
    assert schema["additionalProperties"] is False
    items = schema["$defs"]["Page"]["properties"]["blocks"]["items"]
    assert items["discriminator"]["propertyName"] == "type"
    assert set(items["discriminator"]["mapping"]) == {
        "hero",
        "text",
        "image",
        "gallery",
        "contact_form",
        "footer",
        "embed",
    }
    for name, definition in schema["$defs"].items():
        assert definition.get("description"), f"{name} has no description"
        assert definition.get("title") == name


def test_the_sample_validates_against_the_committed_content_schema(
    sample: dict[str, Any],
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    path = REPO_ROOT / "schemas" / "content.schema.json"
    if not path.exists():
        pytest.skip(f"{path} is not committed yet")
    schema = json.loads(path.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(sample)) == []
    sample["pages"][0]["blocks"][2].pop("alt")
    assert list(validator.iter_errors(sample)), "the schema should reject an image without alt"
