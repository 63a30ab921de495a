"""Redaction masks secrets and personal data, keeping the document's shape."""

from __future__ import annotations

import orjson
import pytest

from strangler_proxy.parity import MASK, Redactor
from strangler_proxy.parity.redact import (
    SECRET_HEADERS,
    is_secret_param,
    looks_sensitive,
    luhn_valid,
    mask_query_params,
    mask_text,
    redact_target,
)

CARD = "4111 1111 1111 1111"


def test_credential_headers_are_masked() -> None:
    headers = Redactor().headers(
        {
            "Authorization": "Bearer abc.def",
            "cookie": "sessionid=1",
            "set-cookie": "sessionid=2",
            "proxy-authorization": "Basic eA==",
            "x-api-key": "k",
            "content-type": "application/json",
        }
    )
    assert headers == {
        "authorization": MASK,
        "cookie": MASK,
        "set-cookie": MASK,
        "proxy-authorization": MASK,
        "x-api-key": MASK,
        "content-type": "application/json",
    }


def test_sensitive_paths_are_masked_keeping_structure() -> None:
    redactor = Redactor(["body.**.email", "body.customer.address"])
    body = {
        "customer": {"email": "plain", "address": {"city": "X"}, "name": "Ann"},
        "items": [{"email": "also plain", "qty": 1}],
    }
    redacted = orjson.loads(redactor.body(orjson.dumps(body)))
    assert redacted == {
        "customer": {"email": MASK, "address": MASK, "name": "Ann"},
        "items": [{"email": MASK, "qty": 1}],
    }


@pytest.mark.parametrize(
    "value",
    [
        "ann@example.com",
        "write to ann@example.com please",
        CARD,
        "4111-1111-1111-1111",
        "Bearer abcdefghijklmnop",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    ],
)
def test_safety_net_masks_lookalikes_anywhere(value: str) -> None:
    redacted = orjson.loads(Redactor().body(orjson.dumps({"deep": [{"x": value}]})))
    assert redacted == {"deep": [{"x": MASK}]}


@pytest.mark.parametrize(
    "value", ["4111 1111 1111 1112", "2024-01-01T10:00:00Z", "order 1234", "a@b"]
)
def test_safety_net_leaves_ordinary_values(value: str) -> None:
    assert not looks_sensitive(value)


def test_card_numbers_as_json_numbers_are_masked() -> None:
    body = orjson.dumps({"pan": 4111111111111111, "id": 4111111111111112, "n": 7})
    assert orjson.loads(Redactor().body(body)) == {
        "pan": MASK,
        "id": 4111111111111112,
        "n": 7,
    }


def test_secret_member_names_are_masked() -> None:
    body = orjson.dumps({"password": "hunter2", "api_key": "k", "token": None})
    assert orjson.loads(Redactor().body(body)) == {
        "password": MASK,
        "api_key": MASK,
        "token": None,
    }


def test_text_bodies_mask_only_the_sensitive_parts() -> None:
    text = Redactor().body(b"Hello ann@example.com, card 4111111111111111.")
    assert text == "Hello ***, card ***."


def test_binary_bodies_are_not_stored() -> None:
    assert Redactor().body(b"\xff\xfe\x00") == "<3 bytes, not text>"


def test_difference_values_are_redacted_by_path() -> None:
    redactor = Redactor(["body.**.card_number"])
    assert redactor.value("body.payment.card_number", "1234") == MASK
    assert redactor.value("body.payment", {"card_number": "1", "k": 2}) == {
        "card_number": MASK,
        "k": 2,
    }
    assert redactor.value("body.note", "mail ann@example.com") == MASK
    assert redactor.value("body.count", 3) == 3


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def test_mask_text_keeps_non_luhn_digit_runs() -> None:
    assert mask_text("order 4111111111111112") == "order 4111111111111112"


def test_the_access_log_and_the_store_share_one_list() -> None:
    from strangler_proxy.observe import logs

    assert logs.is_secret_param is is_secret_param
    assert logs.SECRET_HEADERS is SECRET_HEADERS


def test_request_target_query_secrets_are_masked() -> None:
    target = "/api/p/7?q=kettle&token=SECRET1&api_key=SECRET2&access%5Ftoken=S3#frag"
    assert redact_target(target) == (
        "/api/p/7?q=kettle&token=***&api_key=***&access_token=***#frag"
    )
    assert redact_target("/api/p/7") == "/api/p/7"
    # Kept values still go through the safety net, encoded or not.
    assert redact_target("/me?email=ann%40example.com&page=2") == (
        "/me?email=***&page=2"
    )


def test_request_metadata_masks_targets_and_queries() -> None:
    meta = Redactor().mapping(
        {
            "method": "GET",
            "target": "/a?session_id=S1&x=1",
            "query": "password=S2&y=2",
            "request_id": "r-1",
        }
    )
    assert meta == {
        "method": "GET",
        "target": "/a?session_id=***&x=1",
        "query": "password=***&y=2",
        "request_id": "r-1",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "https://shop.test/cb?code=S1&state=ok",
            "https://shop.test/cb?code=***&state=ok",
        ),
        ('<a href="/x?a=1&amp;token=S2">', '<a href="/x?a=1&amp;token=***">'),
        ("/x?tok%65n=S3 and more", "/x?tok%65n=*** and more"),
        ("/search?q=monkey&postcode=N1", "/search?q=monkey&postcode=N1"),
        ("a=b; token=c", "a=b; token=c"),  # not after ? & or ;: not a query
    ],
)
def test_query_parameters_inside_any_text_are_masked(text: str, expected: str) -> None:
    assert mask_query_params(text) == expected


def test_urls_in_headers_and_json_strings_lose_their_secrets() -> None:
    redactor = Redactor()
    headers = redactor.headers({"location": "/next?api_key=S1&page=2"})
    assert headers == {"location": "/next?api_key=***&page=2"}
    body = orjson.dumps({"self": "/p?token=S2", "next": "/p?page=3"})
    assert orjson.loads(redactor.body(body)) == {
        "self": "/p?token=***",
        "next": "/p?page=3",
    }
