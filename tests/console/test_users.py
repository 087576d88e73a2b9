"""processor user create: a console user with a role, the password from a prompt or a named variable, hashed."""

from __future__ import annotations

import json

import pytest
import sqlalchemy
from click.testing import CliRunner

from processor.cli import cli
from processor.services.users import authenticate
from tests.builders import UowFactory
from tests.clis import error_line
from tests.console.conftest import PASSWORD


def run(*args: str, env: dict[str, str] | None = None, prompt: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env, input=prompt, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


class TestUserCreate:
    def test_password_from_a_named_variable_is_stored_only_as_a_hash(self, make_uow: UowFactory) -> None:
        code, out, err = run(
            "user", "create", "--username", "Alice", "--role", "operator", "--password-env", "ALICE_PW", "--json",
            env={"ALICE_PW": PASSWORD},
        )  # fmt: skip

        assert (code, json.loads(out)) == (0, {"username": "alice", "role": "operator"}), err
        with make_uow() as uow:
            stored = uow.session.execute(sqlalchemy.text("SELECT password_hash FROM users")).scalar_one()
        assert PASSWORD not in stored
        assert stored.startswith("$argon2id$")
        user = authenticate(make_uow(), "alice", PASSWORD)
        assert user is not None
        assert user.role == "operator"
        assert authenticate(make_uow(), "alice", PASSWORD + "!") is None
        assert authenticate(make_uow(), "bob", PASSWORD) is None

    def test_password_from_the_prompt_asked_twice(self, make_uow: UowFactory) -> None:
        code, out, err = run(
            "user", "create", "--username", "vic", "--role", "viewer", prompt=f"{PASSWORD}\n{PASSWORD}\n"
        )

        assert code == 0, err
        assert "user vic created (viewer)" in out
        assert PASSWORD not in out + err
        assert authenticate(make_uow(), "vic", PASSWORD) is not None

    def test_the_same_username_twice_is_refused(self, make_uow: UowFactory) -> None:
        env = {"PW": PASSWORD}
        assert run("user", "create", "--username", "alice", "--role", "viewer", "--password-env", "PW", env=env)[0] == 0

        code, _, err = run(
            "user", "create", "--username", "alice", "--role", "operator", "--password-env", "PW", env=env
        )

        assert (code, error_line(err)) == (1, "error: user alice exists already")

    @pytest.mark.parametrize(
        ("args", "env", "code", "message"),
        [
            (["--username", "alice", "--role", "operator"], {"PW": "short"}, 1, "password: too short"),
            (["--username", "alice", "--role", "operator"], {}, 1, "PW is not set or is empty"),
            (["--username", "a b", "--role", "operator"], {"PW": PASSWORD}, 1, "is not a username"),
            (["--username", "alice", "--role", "admin"], {"PW": PASSWORD}, 2, "admin"),
        ],
    )
    def test_bad_input_is_one_line_and_nothing_is_stored(
        self, make_uow: UowFactory, args: list[str], env: dict[str, str], code: int, message: str
    ) -> None:
        exit_code, _, err = run("user", "create", *args, "--password-env", "PW", env=env)

        assert exit_code == code
        assert message in err
        assert "Traceback" not in err
        assert PASSWORD not in err
        with make_uow() as uow:
            assert uow.session.execute(sqlalchemy.text("SELECT count(*) FROM users")).scalar_one() == 0

    def test_a_password_given_as_the_variable_name_is_not_echoed(self, make_uow: UowFactory) -> None:
        code, _, err = run("user", "create", "--username", "alice", "--role", "viewer", "--password-env", PASSWORD)

        assert code == 2
        assert "never an option" in err
        assert PASSWORD not in err
