"""``medweave therapy``: score a questionnaire and compute care outcomes, offline."""

from __future__ import annotations

import json

import typer

from medweave.therapy.instruments import INSTRUMENTS, InvalidAnswers, parse_answers, score
from medweave.therapy.outcomes import outcome

app = typer.Typer(no_args_is_help=True, help="Therapy tools: questionnaires and outcomes.")


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
