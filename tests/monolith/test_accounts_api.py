from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from legacy_monolith.accounts.models import User

pytestmark = pytest.mark.django_db


def test_token_for_valid_credentials(
    anon_api: APIClient, customer: User, password: str
) -> None:
    response = anon_api.post(
        "/api/auth/token/", {"username": "alice", "password": password}
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"token": Token.objects.get(user=customer).key}


def test_token_is_stable_across_sign_ins(
    anon_api: APIClient, customer: User, password: str
) -> None:
    body = {"username": "alice", "password": password}
    first = anon_api.post("/api/auth/token/", body).json()
    assert anon_api.post("/api/auth/token/", body).json() == first


def test_token_with_wrong_password_is_400(anon_api: APIClient, customer: User) -> None:
    response = anon_api.post(
        "/api/auth/token/", {"username": "alice", "password": "nope"}
    )
    assert response.status_code == 400
    assert response.json() == {
        "non_field_errors": ["Unable to log in with provided credentials."]
    }


def test_token_with_missing_fields_is_400(anon_api: APIClient) -> None:
    response = anon_api.post("/api/auth/token/", {})
    assert response.status_code == 400
    assert set(response.json()) == {"username", "password"}


def test_me_shows_the_token_owner(customer_api: APIClient, customer: User) -> None:
    response = customer_api.get("/api/me/")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == customer.pk
    assert body["username"] == "alice"
    assert body["email"] == "alice@example.com"
    assert body["is_staff"] is False
    assert body["date_joined"].endswith("Z")
    assert "password" not in body


def test_me_for_staff(staff_api: APIClient) -> None:
    assert staff_api.get("/api/me/").json()["is_staff"] is True


def test_me_anonymous_is_401_with_token_challenge(anon_api: APIClient) -> None:
    response = anon_api.get("/api/me/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {
        "detail": "Authentication credentials were not provided."
    }


def test_me_with_unknown_token_is_401(anon_api: APIClient) -> None:
    anon_api.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = anon_api.get("/api/me/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_me_with_session_login(client: Client, customer: User) -> None:
    client.force_login(customer)
    assert client.get("/api/me/").json()["username"] == "alice"


def test_register_creates_a_customer_with_a_token(anon_api: APIClient) -> None:
    response = anon_api.post(
        "/api/accounts/register/",
        {
            "username": "carol",
            "email": "carol@example.com",
            "password": "a-long-and-unusual-passphrase",
            "first_name": "Carol",
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    user = User.objects.get(username="carol")
    assert body == {
        "id": user.pk,
        "username": "carol",
        "email": "carol@example.com",
        "first_name": "Carol",
        "last_name": "",
        "token": Token.objects.get(user=user).key,
    }
    assert not user.is_staff
    assert user.check_password("a-long-and-unusual-passphrase")
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert me.get("/api/me/").json()["username"] == "carol"


def test_register_cannot_make_staff(anon_api: APIClient) -> None:
    response = anon_api.post(
        "/api/accounts/register/",
        {
            "username": "mallory",
            "email": "m@example.com",
            "password": "a-long-and-unusual-passphrase",
            "is_staff": True,
        },
    )
    assert response.status_code == 201
    assert not User.objects.get(username="mallory").is_staff


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "x@example.com", "password": "a-long-passphrase-1"}, "username"),
        ({"username": "x", "password": "a-long-passphrase-1"}, "email"),
        ({"username": "x", "email": "not-an-email", "password": "p-long-1x"}, "email"),
        ({"username": "x", "email": "x@example.com"}, "password"),
        ({"username": "x", "email": "x@example.com", "password": "short"}, "password"),
        (
            {"username": "x", "email": "x@example.com", "password": "12345678901"},
            "password",
        ),
        (
            {
                "username": "bad name!",
                "email": "x@example.com",
                "password": "a-long-passphrase-1",
            },
            "username",
        ),
    ],
)
def test_register_validation_errors(
    anon_api: APIClient, payload: dict[str, str], field: str
) -> None:
    response = anon_api.post("/api/accounts/register/", payload)
    assert response.status_code == 400
    body = response.json()
    assert field in body
    assert all(isinstance(message, str) for message in body[field])
    assert not User.objects.filter(username="x").exists()


def test_register_duplicate_username_and_email(
    anon_api: APIClient, customer: User
) -> None:
    response = anon_api.post(
        "/api/accounts/register/",
        {
            "username": "alice",
            "email": "ALICE@example.com",
            "password": "a-long-and-unusual-passphrase",
        },
    )
    assert response.status_code == 400
    assert response.json() == {
        "username": ["A user with that username already exists."],
        "email": ["A user with that email already exists."],
    }


def test_login_page_renders(client: Client) -> None:
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b"<form" in response.content
    assert b'name="password"' in response.content


def test_html_login_and_logout(client: Client, customer: User, password: str) -> None:
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": password}
    )
    assert response.status_code == 302
    assert client.get("/api/me/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/api/me/").status_code == 401


def test_html_login_with_bad_password_shows_error(
    client: Client, customer: User
) -> None:
    response = client.post("/accounts/login/", {"username": "alice", "password": "x"})
    assert response.status_code == 200
    assert b"didn't match" in response.content
