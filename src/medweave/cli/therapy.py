"""``medweave therapy``: score a questionnaire, assess messages for risk and compute care
outcomes, offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from medweave.therapy.instruments import INSTRUMENTS, InvalidAnswers, parse_answers, score
from medweave.therapy.outcomes import outcome

app = typer.Typer(no_args_is_help=True, help="Therapy tools: questionnaires, risk detection and outcomes.")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@app.command("score")
def score_command(
    instrument: str = typer.Argument(..., help="phq9, gad7, phq2 or gad2"),
    answers: str = typer.Argument(..., help="comma-separated item values, 0-3 each"),
) -> None:
    """Score a questionnaire: prints {"total", "severity", "flags"} as JSON."""
    found = INSTRUMENTS.get(instrument.lower())
    if found is None:
        _fail(f"unknown instrument {instrument!r}; use one of {', '.join(INSTRUMENTS)}")
        return
    try:
        result = score(found, parse_answers(answers))
    except InvalidAnswers as exc:
        _fail(str(exc))
        return
    typer.echo(json.dumps(result.as_json()))


def _pair(text: str, name: str) -> tuple[int, int]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(p.isdigit() and p.isascii() for p in parts):
        _fail(f"--{name} is FIRST,LAST: two whole-number totals")
    return int(parts[0]), int(parts[1])


@app.command("outcome")
def outcome_command(
    phq9: str = typer.Option(..., "--phq9", help="first and last PHQ-9 totals: FIRST,LAST"),
    gad7: str = typer.Option(..., "--gad7", help="first and last GAD-7 totals: FIRST,LAST"),
) -> None:
    """NHS Talking Therapies outcomes of a course of care, as JSON."""
    try:
        result = outcome(phq9=_pair(phq9, "phq9"), gad7=_pair(gad7, "gad7"))
    except ValueError as exc:
        _fail(str(exc))
        return
    typer.echo(json.dumps(result.as_json()))


def _messages(path: Path) -> list[tuple[Any, str]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {path}: {exc.__class__.__name__}")
        return []
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            _fail(f"{path}:{number}: not a JSON object")
            return []
        if not isinstance(row, dict) or "id" not in row or not isinstance(row.get("text"), str):
            _fail(f'{path}:{number}: each line is {{"id": ..., "text": "..."}}')
            return []
        out.append((row["id"], row["text"]))
    return out


@app.command("risk")
def risk_command(
    jsonl: Path = typer.Option(..., "--jsonl", help='a file of {"id": ..., "text": ...} lines'),
) -> None:
    """Assess each message for suicide and self-harm risk: one JSON line per input with
    {"id", "level", "evidence"}; level is none, concern, ideation or high."""
    from medweave.therapy.risk import Detector  # loads onnxruntime: only for this command

    messages = _messages(jsonl)  # all lines are checked before anything is printed
    detector = Detector()
    if detector.model_error:
        typer.echo(f"warning: risk model unavailable ({detector.model_error}); phrase layers only", err=True)
    results = detector.assess_many([text for _, text in messages])
    for (ident, _), result in zip(messages, results, strict=True):
        evidence = [e.as_json() for e in result.evidence]
        typer.echo(json.dumps({"id": ident, "level": result.level, "evidence": evidence}))


@app.command("chat")
def chat_command(
    locale: str = typer.Option("en-US", "--locale", help="whose crisis lines to give: en-US, en-GB"),
    no_model: bool = typer.Option(False, "--no-model", help="run the phrase layers of risk detection only"),
) -> None:
    """Talk to the assistant in the terminal, offline: nothing is written to any record. Each
    action the app would carry out (an alert, a questionnaire to store) is shown on stderr."""
    from datetime import UTC, datetime

    from medweave.therapy.assistant import Assistant, Context, State
    from medweave.therapy.risk import Detector
    from medweave.therapy.safety import DEFAULT_LINES, locale_for

    detector = Detector(model=not no_model)
    if detector.model_error and not no_model:
        typer.echo(f"warning: risk model unavailable ({detector.model_error}); phrase layers only", err=True)
    bot, state = Assistant(), State()
    context = Context(locale_for(DEFAULT_LINES, locale))
    typer.echo('Type a message and press Enter; "quit" or end of input leaves.', err=True)
    while True:
        try:
            text = input("you> ")
        except EOFError:
            break
        if text.strip().lower() in ("quit", "exit"):
            break
        if not text.strip():
            continue
        turn = bot.turn(
            state, text[:2000], risk=detector.assess(text[:2000]), context=context, now=datetime.now(UTC)
        )
        state = turn.state
        for reply in turn.replies:
            typer.echo(f"assistant> {reply}")
        for action in turn.actions:
            typer.echo(f"[{action.kind}] {json.dumps(dict(action.data))}", err=True)
        if turn.choices:
            typer.echo(f"  ({' / '.join(turn.choices)})")
