"""Train, evaluate, package and propose a model: what ``medweave ml train`` and the training job run.

One run: `training.train` fits and evaluates under the protocol; then the report gains the subgroup
table (fairlearn), the conformal quantile with its coverage on held-out rows (MAPIE), and the
global explanation (SHAP); the model is exported to ONNX where it can be served and checked
against the native model on the held-out rows (parity 1e-6, or the run fails); and the result is
proposed in the registry under the code version that produced it.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medweave import __version__
from medweave.diagnostics import (
    clinic_data,
    conformal,
    explain,
    monitoring,
    onnx_export,
    subgroups,
    training,
)
from medweave.diagnostics.registry import Artifacts, ModelRecord, Registry
from medweave.errors import InvalidInput, MedweaveError
from medweave.security.principal import Principal, Role
from medweave.security.scopes import ScopeSet

#: Parity the ONNX model must keep with the native one on every held-out row (issue 7).
PARITY = 1e-6
#: Conformal miscoverage: 90% prediction sets, the level of Angelopoulos & Bates 2021's examples.
ALPHA = 0.1


#: How a card names each dataset's outcome (the dataset's own target text is for analysts).
OUTCOME_LABELS: dict[str, str] = {
    "framingham": "coronary heart disease",
    "wdbc": "a malignant breast mass",
    "nhanes": "diagnosed diabetes",
}

_RESEARCH = (
    "Research and teaching: shows how this model performs on the published {title} data. Not for "
    "decisions about a patient until validated on this clinic's own population."
)
#: What each model is for, by dataset; a proposer may write their own. Nothing here is clinical
#: advice: models on teaching extracts are for research until locally validated (GMLP principle 9,
#: FDA/Health Canada/MHRA 2021: "deployed models are monitored", and TRIPOD+AI item 26).
INTENDED_USE: dict[str, str] = {
    "framingham": "Estimate an adult's 10-year risk of coronary heart disease from age, sex, blood "
    "pressure, total cholesterol and BMI, to support (not replace) a clinician's prevention "
    "discussion, after validation on this clinic's population.",
}
OUT_OF_SCOPE: dict[str, str] = {
    "framingham": "People with known coronary heart disease; ages outside those of the source cohort; "
    "diagnosis of acute chest pain; any decision without clinician review; populations unlike the "
    "Framingham teaching extract (mostly white, US, mid-20th century) before local validation.",
}
_OUT_OF_SCOPE_DEFAULT = (
    "Any decision about an individual patient; populations, settings or data collection unlike the "
    "source data's; use outside the dataset's outcome and horizon."
)


@dataclass(frozen=True)
class RunOptions:
    dataset: str
    kind: str
    seed: int = 0
    protocol: str | None = None
    name: str | None = None
    intended_use: str | None = None
    out_of_scope: str | None = None
    params: Mapping[str, Any] | None = None


class ParityError(MedweaveError):
    """The exported ONNX model does not reproduce the native model's predictions."""

    status = 500
    exit_code = 1


@functools.cache
def code_version() -> str:
    """``medweave <version>``, plus the git commit (and ``+dirty``) when run from a checkout."""
    root = Path(__file__).resolve().parents[3]
    base = f"medweave {__version__}"
    git = shutil.which("git")
    if git is None or not (root / ".git").exists():
        return base

    def ask(*args: str) -> str:
        # A fixed git command on our own checkout; no input from anyone reaches it.
        command = [git, "-C", str(root), *args]
        done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=5)  # noqa: S603
        return done.stdout.strip()

    try:
        commit = ask("rev-parse", "--short=12", "HEAD")
        dirty = ask("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return base
    return f"{base} (git {commit}{'+dirty' if dirty else ''})"


def package(result: training.TrainingResult, *, seed: int = 0) -> tuple[dict[str, Any], Artifacts]:
    """The full report and the serving artifacts of one training result."""
    report = dict(result.report)
    model = result.model
    if report["threshold"].get("value") is None:
        raise InvalidInput("the held-out rows hold no outcome of one kind, so no threshold can be set")
    threshold = float(report["threshold"]["value"])
    report["subgroups"] = subgroups.table(
        result.test_groups, outcome=result.test_outcome, risk=result.test_risk, threshold=threshold,
        known=result.test_known, survival=result.test_survival,
    )  # fmt: skip
    sets, coverage = _conformal(result.calibration_risk, result.calibration_outcome, seed=seed)
    report["conformal"] = {
        **sets.to_dict(),
        "coverage": coverage,
        "level": 1 - ALPHA,
        "method": "split conformal, LAC score (MAPIE). Coverage: calibrated on a random half of the "
        "held-out rows, measured on the other half; served sets: calibrated on all held-out rows",
        # Exchangeable only when the served model is the one that scored the held-out rows (a
        # holdout); after cross-validation the served model is refitted on every row, and the
        # held-out risks average several fold models, so the guarantee is approximate.
        "exact": not report["protocol"].get("final_model", "").startswith("refit"),
    }
    report["reference"] = monitoring.reference({c: result.test_x[c].to_numpy() for c in model.features})
    report["outcome_label"] = OUTCOME_LABELS.get(
        report["dataset"]["name"], report["dataset"]["target"].split(";")[0]
    )
    report["explanation"] = {
        "method": "SHAP: exact linear or TreeSHAP where the model allows, permutation otherwise",
        "global": explain.global_importance(model, result.test_x, seed=seed),
    }
    try:
        onnx: bytes | None = onnx_export.to_onnx(model)
    except onnx_export.NotServable:
        onnx = None
    if onnx is not None:
        _check_parity(onnx, result)
    # The chart's feature spec: a built-in one (clinic_data.SPECS), or a clinic table's own sidecar.
    spec = clinic_data.SPECS.get(report["dataset"]["name"]) or clinic_data.spec_of(report["dataset"]["name"])
    usable_spec = spec is not None and tuple(spec.names()) == tuple(model.features)
    artifacts = Artifacts(
        onnx=onnx,
        explainer=explain.explainer_spec(model, result.test_x) if onnx is not None else None,
        conformal=sets.to_dict(),
        feature_spec=spec.to_dict() if usable_spec and spec is not None else None,
    )
    return report, artifacts


def _conformal(
    risk: np.ndarray[Any, Any], outcome: np.ndarray[Any, Any], *, seed: int
) -> tuple[conformal.ConformalSets, float | None]:
    """The served sets (calibrated on every held-out row) and an honest coverage: calibrate on one
    random half, count coverage on the other, so no row both sets and scores the quantile."""
    order = np.random.default_rng(seed).permutation(len(risk))
    half = len(order) // 2
    coverage = None
    if min(half, len(order) - half) >= conformal.minimum_rows(ALPHA):
        first, second = order[:half], order[half:]
        coverage = conformal.calibrate(risk[first], outcome[first], alpha=ALPHA).coverage(
            risk[second], outcome[second]
        )
    return conformal.calibrate(risk, outcome, alpha=ALPHA), coverage


def _check_parity(onnx: bytes, result: training.TrainingResult) -> None:
    served = onnx_export.OnnxRisk(onnx).risk(result.test_x)
    native = result.model.risk(result.test_x)
    worst = float(np.max(np.abs(served - native))) if len(native) else 0.0
    if not worst <= PARITY:
        raise ParityError(f"the ONNX model differs from the native one by {worst:.2e} (limit {PARITY:g})")


def run(
    registry: Registry,
    principal: Principal,
    options: RunOptions,
    *,
    progress: Callable[[int, int], None] | None = None,
    n_jobs: int = 1,
) -> ModelRecord:
    """Train and evaluate, package, and propose the model; returns its registry record."""
    result = training.train(
        options.dataset, options.kind, seed=options.seed, protocol=options.protocol,
        progress=progress, n_jobs=n_jobs, params=options.params,
    )  # fmt: skip
    report, artifacts = package(result, seed=options.seed)
    title = report["dataset"]["title"]
    return registry.propose(
        principal,
        name=options.name or f"{options.dataset}-{options.kind}",
        report=report,
        code_version=code_version(),
        intended_use=options.intended_use or INTENDED_USE.get(options.dataset, _RESEARCH.format(title=title)),
        out_of_scope=options.out_of_scope or OUT_OF_SCOPE.get(options.dataset, _OUT_OF_SCOPE_DEFAULT),
        artifacts=artifacts,
    )


def train_job(
    registry: Registry, *, proposer: str, role: str | None, options: RunOptions
) -> Callable[[Any], Any]:
    """The ``ml.train`` job: `run` with progress, as the principal who asked (an operator at the
    CLI, or a data scientist from the page); returns ``{"model_id": ...}``."""
    principal = (
        Principal.internal(proposer)
        if role is None
        else Principal(kind="user", subject=proposer, scopes=ScopeSet.parse(""), role=Role(role))
    )

    def job(ctx: Any) -> dict[str, Any]:
        def progress(done: int, total: int) -> None:
            ctx.check()
            ctx.report(done, total)

        record = run(registry, principal, options, progress=progress)
        return {"model_id": record.id, "name": record.name, "version": record.version}

    return job
