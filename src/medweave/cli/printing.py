"""``medweave print``: the 3D printing lab's file-level tools (issue 8).

These commands read and write files only; nothing here touches the record store. The lab's
pages do the same steps as background jobs and record the results on the patient.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from medweave.cli.context import fail, one_line_errors, settings
from medweave.printing import pipeline
from medweave.printing.volume import Volume

app = typer.Typer(no_args_is_help=True, help="3D printing lab: CT to print-ready, traceable meshes.")


def _load(path: Path, *, modalities: frozenset[str]) -> Volume:
    from medweave.printing.load import load_volume

    cfg = settings()
    return load_volume(path, max_bytes=cfg.print_max_volume_mb * 1024 * 1024, modalities=modalities)


def _source(volume: Volume) -> dict[str, str]:
    """What the part was made from, for the lab's records (not written into the file)."""
    src = volume.source
    return {"modality": src.modality, "study_uid": src.study_uid, "series_uid": src.series_uid}


def _triangles(value: int) -> int | None:
    if value < 0:
        raise fail("--triangles must be 0 (no simplification) or positive", 2)
    return value or None


@app.command("model")
@one_line_errors
def model(
    ct: Path = typer.Option(..., "--ct", help="A DICOM folder, a zip of one, or a NIfTI file."),
    preset: str = typer.Option(..., "--preset", help="bone, skin, or custom (the window --iso to --max)."),
    iso: float | None = typer.Option(None, "--iso", help="Lower threshold in HU instead of the preset's."),
    upper: float | None = typer.Option(None, "--max", help="Upper threshold in HU (a window)."),
    out: Path = typer.Option(..., "--out", help="FILE.stl or FILE.3mf"),
    triangles: int = typer.Option(
        pipeline.DEFAULT_TRIANGLES, "--triangles", help="Simplify to this many (0: keep all)."
    ),
) -> None:
    """Segment a CT (or MRI, with --preset skin) and write a watertight surface in patient (LPS)
    millimetres. Prints JSON: triangles, watertight, volume_mm3, seconds."""
    if out.suffix.lower() not in (".stl", ".3mf"):
        raise fail("the output must be a .stl or .3mf file", 2)
    volume = _load(ct, modalities=frozenset({"CT", "MR"}))
    part = pipeline.make_model(volume, preset=preset, iso=iso, hi=upper, triangles=_triangles(triangles))
    done = pipeline.export(part, out)
    summary = part.summary()
    summary.update(out=str(out), sha256=done.sha256, source=_source(volume), notes=list(volume.source.notes))
    typer.echo(json.dumps(summary))


@app.command("implant")
@one_line_errors
def implant(
    ct: Path = typer.Option(..., "--ct", help="A skull CT with a defect: DICOM folder, zip or NIfTI."),
    out: Path = typer.Option(..., "--out", help="FILE.stl or FILE.3mf"),
    thickness: float | None = typer.Option(None, "--thickness", help="A plate of uniform thickness (mm)."),
    margin: float = typer.Option(
        2.0, "--margin", help="Flange over the defect rim (mm); 0: the missing bone only."
    ),
    triangles: int = typer.Option(
        pipeline.DEFAULT_TRIANGLES, "--triangles", help="Simplify to this many (0: keep all)."
    ),
) -> None:
    """Design a cranial implant by mirroring the healthy side across the estimated mid-sagittal
    plane; written in the CT's patient coordinates (mm, LPS). Prints a JSON summary."""
    if out.suffix.lower() not in (".stl", ".3mf"):
        raise fail("the output must be a .stl or .3mf file", 2)
    volume = _load(ct, modalities=frozenset({"CT"}))
    part = pipeline.make_implant(
        volume, margin_mm=margin, thickness_mm=thickness, triangles=_triangles(triangles)
    )
    done = pipeline.export(part, out)
    summary = part.summary()
    summary.update(
        out=str(out),
        sha256=done.sha256,
        coordinates="LPS mm",
        source=_source(volume),
        notes=list(volume.source.notes),
    )
    typer.echo(json.dumps(summary))


@app.command("splint")
@one_line_errors
def splint(
    scan: Path = typer.Option(..., "--scan", help="A closed limb surface scan: STL, PLY or OBJ (mm)."),
    out: Path = typer.Option(..., "--out", help="FILE.stl or FILE.3mf"),
    thickness: float = typer.Option(3.0, "--thickness", help="Shell thickness (mm)."),
    clearance: float = typer.Option(1.0, "--clearance", help="Gap between skin and splint (mm)."),
    vent: float = typer.Option(6.0, "--vent", help="Ventilation hole diameter (mm); 0: none."),
) -> None:
    """Design a volar wrist splint around a limb scan. Prints a JSON summary."""
    from medweave.printing.meshio import read_mesh

    if out.suffix.lower() not in (".stl", ".3mf"):
        raise fail("the output must be a .stl or .3mf file", 2)
    limb = read_mesh(scan)
    options = {"thickness_mm": thickness, "clearance_mm": clearance, "vent_diameter_mm": vent}
    part = pipeline.make_splint(limb, options=options)
    done = pipeline.export(part, out)
    summary = part.summary()
    summary.update(out=str(out), sha256=done.sha256)
    typer.echo(json.dumps(summary))


@app.command("check")
@one_line_errors
def check(
    file: Path = typer.Argument(..., help="An STL or 3MF (or PLY/OBJ) mesh in millimetres."),
    printer: str | None = typer.Option(
        None, "--printer", help="A printer id (default MEDWEAVE_PRINT_PRINTER)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Print-readiness report: watertight, manifold, self-intersections, normals, minimum wall,
    volume and mass per material, build volume, suggested orientation. Exit 0 pass, 1 fail."""
    from medweave.printing.checks import check as run_checks
    from medweave.printing.meshio import read_mesh
    from medweave.printing.printers import load_printers

    cfg = settings()
    catalog = load_printers(cfg.printers_file)
    name = printer or cfg.print_printer
    if name not in catalog.printers:
        raise fail(f"unknown printer {name!r}; known: {', '.join(sorted(catalog.printers))}", 2)
    report = run_checks(read_mesh(file), printer=catalog.printer(name), catalog=catalog)
    typer.echo(json.dumps(report.to_json()) if as_json else report.to_text())
    raise typer.Exit(0 if report.passed else 1)


@app.command("pull")
@one_line_errors
def pull(
    pacs: str = typer.Option(..., "--pacs", help="http://host:port/dicom-web or dicom://AET@host:port"),
    study: str = typer.Option(..., "--study", help="The StudyInstanceUID."),
    out: Path = typer.Option(..., "--out", help="A new or empty folder for the DICOM files."),
    series: str | None = typer.Option(None, "--series", help="Only this SeriesInstanceUID."),
) -> None:
    """Pull a study from a PACS over DICOMweb (QIDO-RS, WADO-RS) or DIMSE (C-FIND, C-GET).
    Prints a JSON summary."""
    from medweave.printing.pacs import pull_study

    typer.echo(json.dumps(pull_study(pacs, study, out, series_uid=series)))
