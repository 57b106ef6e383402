from reconciler.settings import RateBudget, Secret, Settings


def test_secrets_are_never_shown_by_repr_or_str() -> None:
    settings = Settings.from_env(
        {"CLOUDFLARE_API_TOKEN": "cf-very-secret", "STRIPE_API_KEY": "sk_x"}
    )
    assert "cf-very-secret" not in repr(settings)
    assert "sk_x" not in str(settings)
    assert settings.cloudflare.token.reveal() == "cf-very-secret"


def test_rate_budget_parses_requests_per_period() -> None:
    assert RateBudget.parse("600/60") == RateBudget(requests=600, period=60.0)


def test_empty_secret_is_falsy() -> None:
    assert not Secret("")
    assert Secret("x")
