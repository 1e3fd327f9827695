"""`mux config show` output must be TOML that reads back to the same data."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mux.configfile import loads as toml_loads
from mux.toml_text import dumps


def test_shape() -> None:
    assert dumps({"docker": {"image": "x", "volumes": ["a", "b"], "run_as_user": True, "network": None,
                             "limits": {"memory": "4g"}}, "git": {}}) == (
        '[docker]\nimage = "x"\nvolumes = ["a", "b"]\nrun_as_user = true\n\n'
        '[docker.limits]\nmemory = "4g"\n\n[git]'
    )


def test_keys_that_are_not_bare_are_quoted() -> None:
    data = {"credentials": {"github.com": {"value": "${GH}"}, "my key": {"domains": ["a"]}}}
    assert toml_loads(dumps(data)) == data


def test_characters_outside_the_bmp() -> None:
    data = {"git": {"user_name": "Ada \U0001f600 \u00e9\x7f\x00\n\t\""}}
    assert toml_loads(dumps(data)) == data


scalars = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",))),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
values = st.one_of(scalars, st.lists(st.text(st.characters(exclude_categories=("Cs",))), max_size=3))
keys = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=8)
tables: Any = st.recursive(
    st.dictionaries(keys, values, max_size=4),
    lambda inner: st.dictionaries(keys, st.one_of(values, inner), max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(keys, tables, max_size=3))
def test_round_trip(data: dict[str, Any]) -> None:
    assert toml_loads(dumps(data)) == data
