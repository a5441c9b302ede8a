"""Artifact folders and stored artifact paths: every study writes inside its own folder (named by
its id, never by its raw name), and every stored path read back stays inside the artifact folder."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tuneloop as tl
from tuneloop.errors import NotFound
from tuneloop.store._logs import artifact_stem, study_folder

HOSTILE = ["..", ".", "x" * 10_000, "a/b", "../../evil", "/etc/passwd", "ünïcødé 名前 ☃", "...", "-rf", " . ", "CON"]


def logs_a_picture(trial: tl.Trial) -> dict:
    """One image sample, its pixels set by x, so an overwritten file shows."""
    import numpy as np

    trial.log_sample(1, "picture", np.full((2, 2), trial.params.x), kind="image")
    trial.report(1, loss=trial.params.x)
    return {"loss": trial.params.x}


def logs_awkward_sample_names(trial: tl.Trial) -> dict:
    """Samples whose names clash once slugged, or would make too long a file name."""
    import numpy as np

    for i, name in enumerate(["a b", "a_b", "a/b", "n" * 300, "n" * 299 + "m", "..", ""]):
        trial.log_sample(1, name, np.full((2, 2), i / 10), kind="image")
    trial.report(1, loss=0.0)
    return {"loss": 0.0}


def run(storage: str, name: str, fn=logs_a_picture, x: float = 0.5) -> tuple[tl.Store, list]:
    study = tl.Study(name, tl.Space(x=tl.Choice([x])), fn, metric="loss", mode="min", storage=storage)
    study.run(searcher="grid")
    store = tl.Store(storage)
    (t,) = store.trials(store.require_study(name).id)
    assert t.state == "completed", t.error
    return store, store.samples(t.id)


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_studies_whose_names_slug_alike_get_their_own_folders(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tuneloop.db'}"
    store, (first,) = run(storage, "exp 1", x=0.1)
    _, (second,) = run(storage, "exp_1", x=0.9)
    a, b = store.artifact_file(first.path), store.artifact_file(second.path)
    assert a.parent.parent != b.parent.parent  # one folder per study
    assert a.parent.parent.name.endswith("-exp_1") and b.parent.parent.name.endswith("-exp_1")  # readable
    assert a.read_bytes() != b.read_bytes()  # neither image overwrote the other


@pytest.mark.parametrize("name", HOSTILE, ids=lambda n: repr(n[:12]))
def test_hostile_study_names_write_inside_the_artifact_folder(tmp_path, name):
    storage = f"sqlite:///{tmp_path / 'tuneloop.db'}"
    before = set(os.listdir(tmp_path))
    store, (sample,) = run(storage, name)
    root = store.artifact_dir.resolve()
    image = store.artifact_file(sample.path)
    assert image.is_file() and image.is_relative_to(root)
    assert len(sample.path) < 200 and all(len(part) <= 100 for part in Path(sample.path).parts)
    folder, trial, _ = Path(sample.path).parts  # the study's own folder, named by its id
    assert folder.startswith(f"{store.require_study(name).id}-") and trial == "trial-0"
    # nothing beside the database but the database's own files and the artifact folder
    assert set(os.listdir(tmp_path)) - before <= {"tuneloop.db", "tuneloop.db-wal", "tuneloop.db-shm", root.name}
    assert files_under(tmp_path) - files_under(root) <= {tmp_path / n for n in ("tuneloop.db", "tuneloop.db-wal",
                                                                               "tuneloop.db-shm")}


def test_sample_names_that_slug_alike_or_run_long_keep_their_own_files(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tuneloop.db'}"
    store, samples = run(storage, "names", fn=logs_awkward_sample_names)
    files = [store.artifact_file(s.path) for s in samples]
    assert len(set(files)) == len(samples) == 7  # no sample overwrote another
    assert all(len(f.name) <= 80 and not f.name.startswith((".", "-")) for f in files)
    assert len({f.read_bytes() for f in files}) == 7


# -- property tests: any string ------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store for every example; its artifact folder holds a file, a folder and links out."""
    base = tmp_path_factory.mktemp("prop")
    (base / "secret.txt").write_text("beside the database")
    s = tl.Store(f"sqlite:///{base / 'tuneloop.db'}")
    root = s.artifact_dir
    (root / "1-study" / "trial-0").mkdir(parents=True)
    (root / "1-study" / "trial-0" / "picture-step1.png").write_bytes(b"png")
    (root / "out").symlink_to(base)  # a link out: a path through it must be refused too
    (root / "secret-link").symlink_to(base / "secret.txt")
    yield s
    s.close()


PATHISH = st.lists(st.sampled_from(["..", ".", "/", "1-study", "trial-0", "picture-step1.png", "out", "secret-link",
                                    "secret.txt", "%2e%2e", "\\", "\x00", "~", "C:", "//"]), max_size=8).map("".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(relative=st.one_of(st.text(), PATHISH, st.lists(PATHISH, max_size=5).map("/".join)))
def test_artifact_file_never_leaves_the_artifact_folder(store, relative):
    root = store.artifact_dir.resolve()
    try:
        path = store.artifact_file(relative)
    except NotFound:
        return
    assert path.is_relative_to(root) and path != root
    assert "beside the database" not in (path.read_text() if path.is_file() else "")


def test_a_name_too_long_for_the_file_system_is_no_artifact(store):
    with pytest.raises(NotFound, match="No artifact"):  # found by the property above: stat raised ENAMETOOLONG
        store.artifact_file("0" * 27 + "\x80" * 60 + "İıĲĳ" * 40)


_ids = itertools.count(1)
_folders: dict[str, str] = {}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(st.characters(blacklist_categories=["Cs"]), max_size=300)
       | st.sampled_from(HOSTILE) | st.text(alphabet=". /_-", max_size=12))
def test_every_study_name_gets_a_folder_of_its_own_inside_the_artifact_folder(store, name):
    record = store.get_study(name) or store.create_study(name, "loss", "min", tl.Space(x=tl.Float(0, 1)), {})
    relative = store.save_artifact(record.id, name, 0, name, 1, b"png", "png")
    root = store.artifact_dir.resolve()
    path = store.artifact_file(relative)  # what a reader gets back: inside the folder
    assert path.is_file() and path.is_relative_to(root)
    folder = Path(relative).parts[0]
    assert len(Path(relative).parts) == 3 and folder == study_folder(record.id, name) and len(folder) <= 60
    assert _folders.setdefault(folder, name) == name  # distinct names never share a folder


@given(i=st.integers(0, 2**63), j=st.integers(0, 2**63), a=st.text(), b=st.text())
def test_folder_and_file_names_are_single_safe_components(i, j, a, b):
    for part in (study_folder(i, a), artifact_stem(a)):
        assert part not in ("", ".", "..") and "/" not in part and "\\" not in part and "\x00" not in part
        assert part.isascii() and not part.startswith((".", "-"))
    assert len(artifact_stem(a)) <= 60
    if i != j:
        assert study_folder(i, a) != study_folder(j, b)
    if a != b:
        assert artifact_stem(a) != artifact_stem(b)


def logs_at_a_huge_step(trial: tl.Trial) -> dict:
    import numpy as np

    trial.log_sample(10**300, "picture", np.zeros((2, 2)), kind="image")
    return {"loss": 0.0}


def test_a_step_past_a_database_integer_fails_the_trial_with_one_line(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tuneloop.db'}"
    study = tl.Study("huge", tl.Space(x=tl.Choice([0.5])), logs_at_a_huge_step, metric="loss", mode="min",
                     storage=storage)
    study.run(searcher="grid")
    (t,) = study.trials
    assert t.state == "failed" and "below 2**63" in t.error.splitlines()[0] and len(t.error.splitlines()[0]) < 300
