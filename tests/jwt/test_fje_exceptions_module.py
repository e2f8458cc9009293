"""Flask-JWT-Extended's exceptions module and its ``JWT_TOKEN_LOCATION`` check, to the
letter: compared with Flask-JWT-Extended itself (the bench extra installs it).
"""

from __future__ import annotations

import inspect

import pytest

from quart_app.jwt import exceptions
from quart_app.jwt.config import settings_problems, token_locations
from quart_app.startup.preflight import problems_of
from quart_app.startup.settings import load_settings

fje_exceptions = pytest.importorskip("flask_jwt_extended.exceptions")
fje_config = pytest.importorskip("flask_jwt_extended.config")
flask = pytest.importorskip("flask")

BANANA = 'JWT_TOKEN_LOCATION can only contain "headers", "cookies", "query_string", or "json"'


def fje_classes() -> dict[str, type[BaseException]]:
    return {
        name: value
        for name, value in vars(fje_exceptions).items()
        if inspect.isclass(value) and issubclass(value, Exception)
    }


def test_every_fje_exception_class_imports_from_quart_app_jwt_exceptions() -> None:
    assert fje_classes()
    for name, fje_class in fje_classes().items():
        ours = getattr(exceptions, name)  # `from quart_app.jwt.exceptions import <name>`
        assert inspect.isclass(ours) and issubclass(ours, Exception)
        # The same family: a subclass of FJE's base there is one of ours here.
        for fje_base in fje_class.__mro__[1:]:
            if fje_base.__module__ == fje_exceptions.__name__:
                assert issubclass(ours, getattr(exceptions, fje_base.__name__)), name


def fje_error(value: object) -> str:
    app = flask.Flask(__name__)
    app.config["JWT_TOKEN_LOCATION"] = value
    with app.app_context(), pytest.raises(RuntimeError) as raised:
        _ = fje_config.config.token_location
    return str(raised.value)


@pytest.mark.parametrize("value", ["banana", ["headers", "banana"]])
def test_a_bad_token_location_raises_fjes_text(value: object) -> None:
    assert fje_error(value) == BANANA
    with pytest.raises(RuntimeError) as raised:
        token_locations(value)
    assert str(raised.value) == BANANA
    assert settings_problems({"JWT_TOKEN_LOCATION": value}) == [BANANA]


def test_the_start_up_check_catches_the_string_form() -> None:
    settings = load_settings({"JWT_TOKEN_LOCATION": "banana", "JWT_SECRET_KEY": "x" * 40}, {})
    assert BANANA in problems_of(settings, {})


def test_one_good_location_as_a_string_still_works() -> None:
    assert token_locations("cookies") == ("cookies",)
