"""The one set of value checks: the config's wording (with the YAML type) and a task
parameter's (the value as Python writes it) come from the same check."""

from __future__ import annotations

import pytest

from bench import checks, registry


def test_a_config_check_names_the_key_path_and_the_yaml_type() -> None:
    with pytest.raises(checks.Invalid) as info:
        checks.integer(("training", "steps"), "5", 1)
    assert info.value.path == ("training", "steps")
    assert str(info.value) == "expected an integer, got '5' (str)"
    with pytest.raises(checks.Invalid, match=r"^must be >= 1, got 0$"):
        checks.at_least(1)(("x",), 0)


@pytest.mark.parametrize(("check", "value", "message"), [
    (registry.integer(1), "5", "expected an integer, got '5'"),
    (registry.integer(1), True, "expected an integer, got True"),
    (registry.integer(1), 0, "must be >= 1, got 0"),
    (registry.boolean, "yes", "expected true or false, got 'yes'"),
    (registry.optional_str, "", "expected a non-empty string or null, got ''"),
])
def test_a_task_parameter_check_is_a_value_error_without_the_type(
        check: object, value: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        check(value)  # type: ignore[operator]
    assert str(info.value) == message


def test_the_checks_pass_good_values_through() -> None:
    assert registry.integer()(-3) == -3 and registry.boolean(False) is False
    assert registry.optional_str(None) is None and checks.number((), 2) == 2.0
    assert checks.choice(("a", "b"))((), "b") == "b" and checks.mapping((), None) == {}
    assert checks.choice(("a", "b")).accepts == "a | b"
