"""``medweave therapy score`` and ``outcome``: the CLI contract of issue 6."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from medweave.cli.main import app

runner = CliRunner()


def test_score_prints_total_severity_and_flags() -> None:
    r = runner.invoke(app, ["therapy", "score", "phq9", "1,1,2,2,1,1,1,1,1"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"total": 11, "severity": "moderate", "flags": ["risk-review"]}
    r = runner.invoke(app, ["therapy", "score", "gad2", "2,1"])
    assert json.loads(r.stdout) == {"total": 3, "severity": "positive", "flags": ["positive-screen:gad7"]}
    r = runner.invoke(app, ["therapy", "score", "GAD7", "0,0,0,0,0,0,0"])
    assert json.loads(r.stdout) == {"total": 0, "severity": "minimal", "flags": []}


def test_score_refuses_bad_input_with_exit_2() -> None:
    for args in (["phq9", "1,2"], ["phq9", "1,2,3,4,0,0,0,0,0"], ["phq9", "a,b"], ["bdi", "1,2"]):
        r = runner.invoke(app, ["therapy", "score", *args])
        assert r.exit_code == 2, (args, r.output)
        assert "Traceback" not in r.output and r.stdout == ""
        assert len(r.stderr.strip().splitlines()) == 1


def test_outcome() -> None:
    r = runner.invoke(app, ["therapy", "outcome", "--phq9", "18,3", "--gad7", "12,2"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {
        "caseness_start": True,
        "caseness_end": False,
        "reliable_improvement": True,
        "reliable_deterioration": False,
        "recovery": True,
        "reliable_recovery": True,
    }
    for bad in (["--phq9", "18", "--gad7", "1,2"], ["--phq9", "30,1", "--gad7", "1,2"]):
        r = runner.invoke(app, ["therapy", "outcome", *bad])
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output


def test_risk_prints_one_line_per_message(tmp_path) -> None:
    messages = tmp_path / "in.jsonl"
    rows = [
        {"id": "a", "text": "I’ve been saving my tablets and I’m going to take them all tonight"},
        {"id": 7, "text": "this traffic is killing me"},
        {"id": "c", "text": "my brother said he wants to kill himself"},
        {"id": "d", "text": "I don't want to be here any more"},
    ]
    messages.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    r = runner.invoke(app, ["therapy", "risk", "--jsonl", str(messages)])
    assert r.exit_code == 0, r.output
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(o["id"], o["level"]) for o in out] == [
        ("a", "high"),
        (7, "none"),
        ("c", "concern"),
        ("d", "ideation"),
    ]
    assert all(set(o) == {"id", "level", "evidence"} for o in out)
    first = out[0]["evidence"]
    assert first and all(rows[0]["text"][e["start"] : e["end"]] == e["text"] for e in first)


def test_risk_refuses_bad_files_with_exit_2(tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    for content in ('{"id": 1, "text": "fine"}\nnot json\n', '{"text": "no id"}\n', '["a list"]\n'):
        bad.write_text(content, encoding="utf-8")
        r = runner.invoke(app, ["therapy", "risk", "--jsonl", str(bad)])
        assert r.exit_code == 2, r.output
        assert r.stdout == "" and "Traceback" not in r.output  # nothing printed before the check
        assert len(r.stderr.strip().splitlines()) == 1
    r = runner.invoke(app, ["therapy", "risk", "--jsonl", str(tmp_path / "missing.jsonl")])
    assert r.exit_code == 2 and "cannot read" in r.stderr


def test_chat_runs_the_assistant_in_the_terminal() -> None:
    said = "hello\nPHQ-2\n2\n1\nI don't want to be alive anymore\nquit\n"
    r = runner.invoke(app, ["therapy", "chat", "--no-model", "--locale", "en-GB"], input=said)
    assert r.exit_code == 0, r.output
    assert "not a human" in r.stdout and "Generalized" not in r.stdout
    assert "116 123" in r.stdout  # the UK lines
    assert '[questionnaire] {"instrument": "phq2", "answers": [2, 1]}' in r.stderr
    assert '[alert] {"level": "ideation", "source": "chat"}' in r.stderr
