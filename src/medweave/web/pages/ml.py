"""Model pages: the registry, one model's validation and monitoring, training and lifecycle, and
the risk cards in a patient's chart.

The registry pages hold no patient data (metrics, curves, subgroup tables and drift are over
groups), so data scientists, clinicians and admins may open them. A data scientist starts
training from here (a background job, followed on the jobs page); a clinician (a clinical lead
when ``MEDWEAVE_ML_CLINICAL_LEADS`` is set) approves or retires a model with a reason; the
registry decides who may, and audits it.
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from markupsafe import Markup
from starlette.responses import PlainTextResponse, Response

from medweave.diagnostics import cards, chai, clinic_data, monitoring, training, tripod
from medweave.diagnostics.datasets import DATASETS
from medweave.diagnostics.estimators import KINDS
from medweave.diagnostics.registry import Registry, may_decide, may_propose
from medweave.diagnostics.serving import Services
from medweave.errors import InvalidInput, MedweaveError, NotFound
from medweave.jobs import JobClient
from medweave.security.crypto import derive_key
from medweave.security.principal import CARE_ROLES, Role
from medweave.web.pages import routing
from medweave.web.pages.plots import Line, xy_svg
from medweave.web.pages.render import page
from medweave.web.pages.routing import Current, Form, posted, redirect, require_role
from medweave.web.routes.cds import StoreReader

router = APIRouter(route_class=routing.PageRoute)
VIEWERS = (Role.DATA_SCIENTIST, Role.CLINICIAN, Role.ADMIN)
_MODEL_ID = re.compile(r"mdl_[0-9a-f]{16}")


def _registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


def _model_id(model_id: str) -> str:
    if not _MODEL_ID.fullmatch(model_id):
        raise NotFound("no such model")
    return model_id


@router.get("/ml/models", include_in_schema=False)
def models_page(request: Request, current: Current = Depends(routing.signed_in)) -> Response:
    require_role(current, *VIEWERS)
    records = _registry(request).models()
    trainable = [n for n, info in DATASETS.items() if info.task in ("classification", "survival")]
    return page(
        request,
        "ml_models.html",
        title="Models",
        models=records,
        may_train=may_propose(current.principal) and request.app.state.jobs is not None,
        datasets=trainable,
        kinds=list(KINDS),
        started=request.query_params.get("started", "")[:36],
        may_extract=current.user.role == Role.DATA_SCIENTIST,
        specs=list(clinic_data.SPECS),
    )


@router.post("/ml/train", include_in_schema=False)
def train(
    request: Request, form: Form = Depends(posted), current: Current = Depends(routing.signed_in)
) -> Response:
    require_role(current, *VIEWERS)
    if not may_propose(current.principal):
        raise NotFound("no such page")
    jobs: JobClient | None = request.app.state.jobs
    if jobs is None:
        raise InvalidInput("this server runs no background jobs; train with `medweave ml train`")
    dataset, kind = form.get("dataset"), form.get("model")
    if dataset not in DATASETS or kind not in KINDS:
        raise InvalidInput("choose a dataset and a model from the lists")
    try:
        seed = int(form.get("seed", "0") or "0")
    except ValueError:
        raise InvalidInput("the seed is a whole number") from None
    protocol = form.get("protocol") or None
    training.check(dataset, kind, protocol)
    args = {"dataset": dataset, "kind": kind, "seed": seed, "protocol": protocol, "name": None}
    job_id = jobs.enqueue(
        "ml.train", {**args, "proposer": current.principal.subject, "role": str(current.user.role)}
    )
    return redirect(f"/ml/models?started={job_id}")


def _plots(report: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    rel = report.get("reliability") or {}
    if rel.get("mean_predicted"):
        out.append(
            {
                "title": "Reliability (calibration) curve",
                "svg": xy_svg(
                    [
                        Line(
                            "Observed against predicted", tuple(rel["mean_predicted"]), tuple(rel["observed"])
                        ),
                        Line("Perfect calibration", (0.0, 1.0), (0.0, 1.0), "reference"),
                    ],
                    plot_id="plot-reliability",
                    title="Reliability curve",
                    x_label="Predicted risk",
                    y_label="Observed frequency",
                    x_range=(0, 1),
                    y_range=(0, 1),
                    description=f"{len(rel['mean_predicted'])} bins of held-out predictions; points on the "
                    "diagonal are perfectly calibrated.",
                ),
                "table": list(zip(rel["mean_predicted"], rel["observed"], rel["count"], strict=True)),
                "columns": ("Mean predicted", "Observed", "Rows"),
            }
        )
    roc = report.get("roc") or {}
    if roc.get("fpr"):
        out.append(
            {
                "title": "ROC curve",
                "svg": xy_svg(
                    [
                        Line("Model", tuple(roc["fpr"]), tuple(roc["tpr"])),
                        Line("Chance", (0.0, 1.0), (0.0, 1.0), "reference"),
                    ],
                    plot_id="plot-roc",
                    title="ROC curve",
                    x_label="1 - specificity",
                    y_label="Sensitivity",
                    x_range=(0, 1),
                    y_range=(0, 1),
                    description="Sensitivity against 1 - specificity over all thresholds, held-out rows.",
                ),
                "table": list(zip(roc["fpr"], roc["tpr"], strict=True))[:: max(1, len(roc["fpr"]) // 20)],
                "columns": ("1 - specificity", "Sensitivity"),
            }
        )
    dc = report.get("decision_curve") or {}
    if dc.get("thresholds"):
        ts = tuple(dc["thresholds"])
        out.append(
            {
                "title": "Decision curve",
                "svg": xy_svg(
                    [
                        Line("Model", ts, tuple(dc["model"])),
                        Line("Treat all", ts, tuple(dc["treat_all"]), "other"),
                        Line("Treat none", (ts[0], ts[-1]), (0.0, 0.0), "reference"),
                    ],
                    plot_id="plot-decision",
                    title="Decision curve",
                    x_label="Threshold probability",
                    y_label="Net benefit",
                    description="Net benefit of the model, of treating all and of "
                    "treating none, by threshold (Vickers & Elkin 2006).",
                ),
                "table": list(zip(ts, dc["model"], dc["treat_all"], strict=True))[:: max(1, len(ts) // 20)],
                "columns": ("Threshold", "Model", "Treat all"),
            }
        )
    return [{**p, "svg": Markup(p["svg"])} for p in out]  # noqa: S704 - our own escaped SVG


@router.get("/ml/models/{model_id}", include_in_schema=False)
def model_page(request: Request, model_id: str, current: Current = Depends(routing.signed_in)) -> Response:
    require_role(current, *VIEWERS)
    registry = _registry(request)
    record = registry.get(_model_id(model_id))
    watch = monitoring.summary(registry.engine, record)
    drift = [
        {**d, "svg": Markup(xy_svg(  # noqa: S704 - our own escaped SVG
            [Line(d["feature"], tuple(range(len(d["series"]))), tuple(p["psi"] for p in d["series"]))],
            plot_id=f"drift-{n}", title=f"PSI of {d['feature']}", x_label="Week", y_label="PSI",
            description=f"Population stability index of {d['feature']} per week against the validation rows.",
        ))} if len(d["series"]) > 1 else {**d, "svg": None}
        for n, d in enumerate(watch["drift"])
    ]  # fmt: skip
    decide = {a: may_decide(current.principal, a, leads=registry.leads) for a in ("approve", "retire")}
    history = [(e, _who(current, e.actor)) for e in registry.history(record.id)]
    return page(
        request,
        "ml_model.html",
        title=f"Model {record.name} v{record.version}",
        model=record,
        report=record.report,
        plots=_plots(record.report),
        tripod=tripod.tripod_ai(record.as_json()),
        history=history,
        decide=decide,
        watch=watch,
        drift=drift,
    )


def _who(current: Current, subject: str) -> str:
    """A user's name for a lifecycle entry (the registry keeps the user id, or an operator's name)."""
    try:
        return current.identity.get_user(subject).username
    except NotFound:
        return subject


@router.post("/ml/models/{model_id}/decide", include_in_schema=False)
def decide(
    request: Request,
    model_id: str,
    form: Form = Depends(posted),
    current: Current = Depends(routing.signed_in),
) -> Response:
    require_role(current, *VIEWERS)
    action = form.get("action")
    _registry(request).decide(current.principal, _model_id(model_id), action, reason=form.get("reason"))
    return redirect(f"/ml/models/{model_id}")


@router.post("/ml/extract", include_in_schema=False)
def extract(
    request: Request, form: Form = Depends(posted), current: Current = Depends(routing.signed_in)
) -> Response:
    """A de-identified training table of this clinic's records, as CSV: pseudonym, features,
    outcome; no name, identifier or date (``clinic_data``). For data scientists only."""
    require_role(current, Role.DATA_SCIENTIST)
    codes = [c.strip() for c in form.get("outcome_codes").replace(",", "\n").splitlines() if c.strip()]
    spec = form.get("spec", "framingham")
    key = derive_key(current.records.master.key, info=b"medweave-ml-table-pid")
    rows, report = clinic_data.extract(
        current.records,
        current.principal,
        spec,
        outcome_codes=codes,
        as_of=datetime.now(UTC),
        pseudonym_key=key,
    )
    name = f"medweave-{spec}-{report['as_of']}.csv"
    return Response(
        clinic_data.csv_text(spec, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/ml/models/{model_id}/card", include_in_schema=False)
def card(request: Request, model_id: str, current: Current = Depends(routing.signed_in)) -> Response:
    """The model card as Markdown, or ``?format=json`` / ``chai`` as JSON, to download."""
    require_role(current, *VIEWERS)
    record = _registry(request).get(_model_id(model_id)).as_json()
    fmt = request.query_params.get("format", "md")
    if fmt == "json":
        body = json.dumps({**cards.model_card(record), "tripod_ai": tripod.tripod_ai(record)}, indent=2)
        return Response(body, media_type="application/json")
    if fmt == "chai":
        return Response(json.dumps(chai.chai_card(record), indent=2), media_type="application/json")
    if fmt != "md":
        raise InvalidInput("the format is md (the model card), json, or chai (the CHAI applied model card)")
    return PlainTextResponse(cards.model_card_markdown(record), media_type="text/markdown; charset=utf-8")


# -- the chart's cards ------------------------------------------------------------------------------


def _markdown(text: str) -> Markup:
    """The little Markdown our own cards use: paragraphs, ``- `` lists and ``**bold**``."""
    out: list[str] = []
    in_list = False
    for raw in text.split("\n"):
        line = html.escape(raw.strip())
        line = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", line)
        if line.startswith("- "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{line[2:]}</li>")
            continue
        if in_list:
            out.append("</ul>")
            in_list = False
        if line:
            out.append(f"<p>{line}</p>")
    if in_list:
        out.append("</ul>")
    return Markup("".join(out))  # noqa: S704 - every piece escaped above


def chart_cards(request: Request, current: Current, patient_id: str) -> list[dict[str, Any]]:
    """The cards every served model gives for this patient, exactly as the CDS service answers an
    EHR, read as the signed-in clinician; a model that fails says so instead of a card."""
    if current.user.role not in CARE_ROLES:
        return []
    services: Services = request.app.state.cds
    reader = StoreReader(current.records, current.principal)
    out: list[dict[str, Any]] = []
    try:
        served = list(services.served())
    except MedweaveError:
        return out
    for service_id in served:
        try:
            response = services.call(
                service_id, patient_id=patient_id, prefetch=None, reader=reader, channel="chart"
            )
        except MedweaveError as exc:
            out.append({"summary": f"{service_id}: not available ({exc.message})", "indicator": "info",
                        "detail": Markup(""), "links": []})  # fmt: skip
            continue
        for c in response["cards"]:
            out.append({**c, "detail": _markdown(c.get("detail", ""))})
    return out
