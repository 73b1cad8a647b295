"""plan.yaml `lifecycle:`: durations, limits, errors that name the line, and the role variables
it becomes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from provision.errors import InputError
from provision.plan import load_plan
from provision.plan.lifecycle import Lifecycle, duration_seconds


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "plan.yaml"
    p.write_text(textwrap.dedent(text).lstrip())
    return p


def test_a_full_lifecycle_section_loads(tmp_path):
    plan = load_plan(write(tmp_path, """
        name: demo
        target: local
        lifecycle:
          checkpoint_command: python train.py --save-now
          notify_url: https://hooks.example.com/spot
          poll_seconds: 2
          ttl: 8h
          idle_minutes: 30
          idle_gpu_util_percent: 3
          on_idle: down
          on_ttl: stop
        """)).plan
    life = plan.lifecycle
    assert life is not None
    assert (life.ttl, life.ttl_seconds) == ("8h", 8 * 3600)
    assert (life.on_idle, life.on_ttl, life.idle_minutes) == ("down", "stop", 30)
    assert life.role_vars() == {
        "spot_watcher_checkpoint_command": "python train.py --save-now",
        "spot_watcher_notify_url": "https://hooks.example.com/spot",
        "spot_watcher_poll_seconds": 2.0,
        "spot_watcher_checkpoint_timeout_seconds": 110,
        "monitoring_idle_minutes": 30,
        "monitoring_idle_gpu_util_percent": 3.0,
    }


def test_no_section_means_no_limits(tmp_path):
    plan = load_plan(write(tmp_path, "name: demo\ntarget: local\n")).plan
    assert plan.lifecycle is None


@pytest.mark.parametrize(("given", "text", "secs"), [
    ("90s", "90s", 90), ("45m", "45m", 2700), ("8h", "8h", 28800), ("2d", "2d", 172800),
    ("1.5h", "1.5h", 5400), (90, "90m", 5400), ("90", "90", 5400), (" 8H ", "8h", 28800),
])
def test_ttl_forms_and_their_seconds(given, text, secs):
    life = Lifecycle(ttl=given)
    assert life.ttl == text
    assert life.ttl_seconds == secs


def test_role_vars_leave_unset_fields_to_the_role_defaults():
    assert Lifecycle().role_vars() == {
        "spot_watcher_poll_seconds": 5.0,
        "spot_watcher_checkpoint_timeout_seconds": 110,
        "monitoring_idle_gpu_util_percent": 5.0,
    }


def test_bad_values_name_file_line_and_field(tmp_path):
    with pytest.raises(InputError) as info:
        load_plan(write(tmp_path, """
            name: demo
            target: local
            lifecycle:
              ttl: soon
              notify_url: ftp://files.example.com/x
              on_idle: pause
              poll_seconds: 0
              idle_minutes: -1
              idle_gpu_util_percent: 120
              checkpoint_comand: x
            """))
    msg = str(info.value)
    assert "plan.yaml:4:3: lifecycle.ttl: 'soon' is not a duration" in msg
    assert "plan.yaml:5:3: lifecycle.notify_url: 'ftp://files.example.com/x' is not an " \
           "http(s) URL" in msg
    assert "plan.yaml:6:3: lifecycle.on_idle: expected one of stop, down; got 'pause'" in msg
    assert "plan.yaml:7:3: lifecycle.poll_seconds: must be at least 1" in msg
    assert "plan.yaml:8:3: lifecycle.idle_minutes: must be greater than 0" in msg
    assert "plan.yaml:9:3: lifecycle.idle_gpu_util_percent: must be at most 100" in msg
    assert "lifecycle.checkpoint_comand: unknown key; did you mean 'checkpoint_command'?" in msg


@pytest.mark.parametrize("bad", ["0m", "0", "-5m", "8 hours", True, [1]])
def test_ttl_must_be_a_positive_duration(bad):
    with pytest.raises(ValueError, match=r"ttl|duration"):
        Lifecycle(ttl=bad)


def test_duration_helper_rejects_garbage():
    with pytest.raises(ValueError, match="not a duration"):
        duration_seconds("tomorrow")


def test_json_schema_documents_every_field():
    from provision.plan.schema import json_schema

    props = json_schema()["$defs"]["Lifecycle"]["properties"]
    assert {"checkpoint_command", "notify_url", "poll_seconds", "ttl", "idle_minutes",
            "idle_gpu_util_percent", "on_idle", "on_ttl"} <= set(props)
    assert all(p.get("description") for p in props.values())
