"""Loading experiment files: the study they define, or a one-line reason they cannot be used."""

import textwrap

import pytest
from conftest import QUADRATIC_EXPERIMENT

import tuneloop as tl


def test_load_study_finds_the_study_and_remembers_the_file(write_experiment):
    path = write_experiment(QUADRATIC_EXPERIMENT)
    study = tl.load_study(path)
    assert study.name == "quad" and study.experiment_path == str(path.resolve())


@pytest.mark.parametrize(
    "source, message",
    [
        ("x = 1\n", "does not define a study: add, at top level, study = tl.Study("),
        ("def broken(:\n", "SyntaxError at line 1"),
        ("raise RuntimeError('no data here')\n", "it raised RuntimeError: no data here"),
    ],
)
def test_unusable_files_say_why(write_experiment, source, message):
    with pytest.raises(tl.ConfigError, match=message.replace("(", r"\(")):
        tl.load_study(write_experiment(source, name=f"e{abs(hash(source))}.py"))


def test_several_studies_need_a_choice(write_experiment):
    source = textwrap.dedent(QUADRATIC_EXPERIMENT) + "\nother = tl.Study('other', space, objective, metric='loss', mode='min')\n"
    source = source.replace("study = tl.Study", "first = tl.Study")
    path = write_experiment(source)
    with pytest.raises(tl.ConfigError, match=r"defines several studies \(other, quad\); choose one with --study"):
        tl.load_study(path)
    assert tl.load_study(path, "other").name == "other"
    with pytest.raises(tl.ConfigError, match="defines no study named 'nope'"):
        tl.load_study(path, "nope")


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(tl.ConfigError, match="does not exist"):
        tl.load_study(tmp_path / "nope.py")
