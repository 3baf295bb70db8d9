"""Bad input to SQLRunHistory: a clear error at the call site, naming the thing and the fix, and
nothing recorded."""
from __future__ import annotations


import math
import re

import pytest

from helpers import dump, query
from runhistory_sql import (
    DatabaseURLError,
    SQLRunHistory,
)
from runhistory_sql.errors import InvalidArgumentError



# -- 9. bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"experiment": 1}, TypeError, "experiment must be a non-empty str"),
        ({"experiment": ""}, TypeError, "experiment must be a non-empty str"),
        ({"run_name": 5}, TypeError, "run_name must be a non-empty str or None"),
        ({"run_name": ""}, TypeError, "run_name must be a non-empty str or None"),
        ({"resume": "sometimes"}, ValueError, "resume must be one of 'never', 'allow', 'must'"),
        ({"resume": True}, ValueError, "resume must be one of"),
        ({"tags": ["a"]}, TypeError, "tags must be a dict, not list"),
        ({"tags": {"a": object()}}, TypeError, "tags must be JSON-serialisable"),
        ({"tags": {"a": "\ud800"}}, ValueError, r"^The text of the tags is not valid Unicode text: '\\ud800' at position 7 "),
        ({"run_name": "r\ud800"}, ValueError, r"^The run_name is not valid Unicode text: '\\ud800' at position 1 "),
        ({"experiment": "e\udfff"}, ValueError, r"^The experiment is not valid Unicode text: '\\udfff' at position 1 "),
        ({"run_name": "r" * 501}, ValueError, r"^A run_name can be at most 500 characters long"),
        ({"experiment": "e" * 501}, ValueError, r"^An experiment can be at most 500 characters long"),
        ({"flush_interval": 0}, ValueError, r"flush_interval must be a number of seconds in \(0, 60\]"),
        ({"flush_interval": 61}, ValueError, "flush_interval must be"),
        ({"flush_interval": "1"}, ValueError, "flush_interval must be"),
        ({"flush_interval": math.nan}, ValueError, "flush_interval must be"),
        ({"term_timeout": -1}, ValueError, r"term_timeout must be a number of seconds in \[0, 3600\], not -1\."),
        ({"term_timeout": "5"}, ValueError, "term_timeout must be"),
        ({"term_timeout": math.nan}, ValueError, "term_timeout must be"),
        ({"term_timeout": True}, ValueError, "term_timeout must be"),
    ],
)
def test_bad_arguments_are_refused_and_change_nothing(url, kwargs, error, message):
    with SQLRunHistory(url, run_name="kept") as h:
        h.update_metric("loss", 1.0)
    before = dump(url)

    with pytest.raises(error, match=message):
        SQLRunHistory(url, **{"run_name": "new", **kwargs})

    assert dump(url) == before


def test_a_bad_term_timeout_in_the_environment_is_refused_naming_it(url, monkeypatch):
    monkeypatch.setenv("RUNHISTORY_SQL_TERM_TIMEOUT", "5s")

    with pytest.raises(InvalidArgumentError) as raised:
        SQLRunHistory(url, run_name="new")

    assert str(raised.value) == (
        "$RUNHISTORY_SQL_TERM_TIMEOUT must be a number of seconds in [0, 3600], not '5s'. "
        "Fix or unset it, or pass term_timeout=."
    )
    assert SQLRunHistory(url, run_name="new", term_timeout=1).close() is None  # the argument wins


def test_the_sigterm_bound_is_the_argument_else_the_environment_else_5_s(monkeypatch):
    from runhistory_sql.write.arguments import resolve_term_timeout

    assert resolve_term_timeout(None) == 5.0
    monkeypatch.setenv("RUNHISTORY_SQL_TERM_TIMEOUT", " 2.5 ")
    assert resolve_term_timeout(None) == 2.5
    assert resolve_term_timeout(0) == 0.0
    monkeypatch.setenv("RUNHISTORY_SQL_TERM_TIMEOUT", "")
    assert resolve_term_timeout(None) == 5.0


def test_a_missing_directory_says_to_create_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'nope' / 'runs.db'}"

    with pytest.raises(DatabaseURLError, match=re.escape(f"mkdir -p {tmp_path / 'nope'}")):
        SQLRunHistory(url)

    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url, message",
    [
        ("foo://x", "Unknown database dialect 'foo'"),
        ("mysql://u@h/db", "supports SQLite and PostgreSQL, not mysql"),
        ("not a url", "Could not parse database URL 'not a url'"),
        ("", "is not a URL"),
        ("sqlite://", "in-memory SQLite database"),
        ("sqlite:///:memory:", "in-memory SQLite database"),
    ],
)
def test_an_unusable_url_is_refused(tmp_path, monkeypatch, url, message):
    monkeypatch.chdir(tmp_path)

    with pytest.raises(DatabaseURLError, match=message):
        SQLRunHistory(url)

    assert list(tmp_path.iterdir()) == []


def test_url_comes_from_the_environment(url, monkeypatch):
    monkeypatch.setenv("RUNHISTORY_SQL_URL", url)

    with SQLRunHistory(run_name="from-env") as h:
        used = h.url

    assert used == url
    assert query(url, "SELECT run_name FROM v_runs") == [("from-env",)]


def test_url_defaults_to_a_file_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    with SQLRunHistory(run_name="default") as h:
        url = h.url

    assert url == "sqlite:///runhistory.db"
    assert query(f"sqlite:///{tmp_path / 'runhistory.db'}", "SELECT run_name FROM v_runs") == [("default",)]


def test_an_explicit_url_beats_the_environment(url, tmp_path, monkeypatch):
    monkeypatch.setenv("RUNHISTORY_SQL_URL", f"sqlite:///{tmp_path / 'env.db'}")

    with SQLRunHistory(url, run_name="explicit"):
        pass

    assert query(url, "SELECT run_name FROM v_runs") == [("explicit",)]
    assert not (tmp_path / "env.db").exists()


