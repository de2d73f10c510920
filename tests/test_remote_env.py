"""Issue #13, class 10: what reaches the remote environment. A glob in
MODAL_OFFLOAD_FORWARD_ENV never forwards a secret-looking name or a URL with credentials;
naming a variable exactly does; PWD never leaves the laptop."""

from __future__ import annotations

import pytest

from modal_offload.remote_env import looks_secret, remote_environment

SECRET_NAMES = ["GITHUB_PAT", "PAT", "AZURE_DEVOPS_PAT", "MY_PAT_VALUE", "DB_PWD", "MYSQL_PWD",
                "SENTRY_DSN", "DATABASE_DSN", "PASS", "DB_PASS", "PASSWD", "SMTP_PASSWORD",
                "CREDENTIALS", "GOOGLE_APPLICATION_CREDENTIALS", "AUTH", "NPM_AUTH",
                "OAUTH_CLIENT", "BASIC_AUTH_HEADER", "API_TOKEN", "STRIPE_SECRET", "SSH_KEY",
                "AWS_REGION", "db_pwd", "github_pat",
                # not the harmless word AUTHOR (red team)
                "HTTP_AUTHORIZATION", "PROXY_AUTHORIZATION", "API_AUTHORISATION",
                "authorization", "CI_JOB_JWT"]
HARMLESS = {"PATH": "/usr/bin", "PYTHONPATH": "/src", "GIT_AUTHOR_NAME": "Ada",
            "MY_URL": "https://example.com/x?a=b@c", "MY_LEVEL": "3", "EDITOR": "vi",
            "MY_TASK": "desk-top", "MY_NOTE": "ask-me", "MY_JSON": '{"a": "eyJ"}'}


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names_are_not_forwarded_by_a_glob(name: str) -> None:
    assert looks_secret(name)
    local = {name: "s3cr3t", "KEEP": "1"}
    assert remote_environment(local, ["*"]) == {
        "KEEP": "1", "MODAL_OFFLOAD_REMOTE": "1", "IN_MODAL_TASK_RUNNER": "1"}
    assert remote_environment(local, [name])[name] == "s3cr3t"  # named exactly: forwarded


@pytest.mark.parametrize("value", [
    "postgres://app:hunter2@db.internal:5432/app", "https://ghp_abc123@github.com/o/r.git",
    "redis://:pw@cache:6379/0", "amqp://user:p%40ss@mq/vhost"])
def test_urls_with_credentials_are_not_forwarded_by_a_glob(value: str) -> None:
    local = {"DATABASE_URL": value, "PIP_INDEX_URL": value}
    env = remote_environment(local, ["*_URL"])
    assert "DATABASE_URL" not in env and "PIP_INDEX_URL" not in env
    assert remote_environment(local, ["DATABASE_URL"])["DATABASE_URL"] == value


@pytest.mark.parametrize("value", [
    "ghp_" + "a1B2" * 9, "github_pat_11ABCDEFG0123456789_abcdef", "glpat-abcdefghij0123456789",
    "xoxb-1234-5678-abcdef", "sk-" + "x1" * 20, "sk-ant-api03-" + "Ab" * 20,
    "sk_live_" + "z" * 24, "AKIAIOSFODNN7EXAMPLE",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
    "Bearer eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.s",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----"])
def test_credential_shaped_values_are_not_forwarded_by_a_glob(value: str) -> None:
    local = {"MYAPP_GH": value, "MYAPP_LEVEL": "3"}
    assert remote_environment(local, ["MYAPP_*"])["MYAPP_LEVEL"] == "3"
    assert "MYAPP_GH" not in remote_environment(local, ["MYAPP_*"])
    assert remote_environment(local, ["MYAPP_GH"])["MYAPP_GH"] == value  # named: forwarded


def test_harmless_names_still_pass_a_glob() -> None:
    env = remote_environment(HARMLESS, ["*"])
    assert {k: env[k] for k in HARMLESS} == HARMLESS


def test_pwd_is_never_forwarded() -> None:
    local = {"PWD": "/home/ada/secret-project", "OLDPWD": "/home/ada", "P1": "x"}
    for allow in (["*"], ["P*"], ["PWD", "OLDPWD"]):
        env = remote_environment(local, allow)
        assert "PWD" not in env and "OLDPWD" not in env
