"""Loading experiment files: the study they define, or a one-line reason they cannot be used."""

import textwrap

import pytest
from shared import QUADRATIC_EXPERIMENT

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


def test_a_stored_experiment_path_is_not_even_read_without_this_users_signature(tmp_path, monkeypatch):
    """A database names a FIFO (opening it to hash would block forever) with a made-up hash and
    signature: refused at once, the file untouched; the user's own record verifies."""
    import os

    from tuneloop.experiment import experiment_record, trusted_experiment

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)
    forged = {"experiment": str(fifo), "experiment_sha256": "0" * 64, "experiment_signature": "0" * 64}
    with pytest.raises(tl.ConfigError, match="did not record running it.*--file PATH"):
        trusted_experiment(forged, "s")
    own = tmp_path / "exp.py"
    own.write_text("x = 1\n")
    record = experiment_record(str(own))
    assert trusted_experiment(record, "s") == str(own)
    from tuneloop._load import pins

    assert pins()[str(own.resolve())] == record["experiment_sha256"]  # what finalize imports next is what was checked
    assert trusted_experiment({"experiment": None}, "s") is None
    assert experiment_record(str(fifo))["experiment_signature"] is None  # nothing to vouch for: no hash of a FIFO


def test_the_loader_is_a_bottom_module_and_the_old_names_still_import(write_experiment):
    """``tuneloop._load`` finds the study without importing ``tuneloop.study`` itself (the file
    that made one did); ``tuneloop.experiment`` keeps the names generated next-round files use."""
    import subprocess
    import sys

    from tuneloop import _load, experiment

    assert experiment.load_study is _load.load_study and experiment.load_module is _load.load_module
    assert experiment.module_name is _load.module_name
    path = write_experiment("x = 1\n", name="plain.py")
    code = (f"import sys, tuneloop._load as l; l.load_module({str(path)!r}); "
            f"print('tuneloop.study' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]


def test_a_file_that_never_imports_tuneloop_defines_no_study(write_experiment):
    with pytest.raises(tl.ConfigError, match="does not define a study"):
        tl.load_study(write_experiment("import math\nstudy = math.pi\n", name="nostudy.py"))


def test_a_pinned_file_is_imported_only_with_the_content_that_was_checked(write_experiment):
    """A file swapped between the check and the import (the queue runner hashes a job's files, then
    its command imports them) is refused, in this process and in the processes it starts."""
    import hashlib
    import subprocess
    import sys

    from tuneloop._load import load_module, pin, pinned_env

    checked = textwrap.dedent(QUADRATIC_EXPERIMENT)
    path = write_experiment(checked, name="pinned.py")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    swapped = write_experiment(checked, name="swapped.py")
    pin(swapped, digest)
    swapped.write_text(checked + "\nprint('not what was checked')\n")
    with pytest.raises(tl.ConfigError, match="changed after tuneloop checked it"):
        load_module(swapped)
    code = f"import tuneloop._load as l; l.load_module({str(swapped)!r})"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=pinned_env({}))
    assert child.returncode != 0 and "changed after tuneloop checked it" in child.stderr
    assert "not what was checked" not in child.stdout
    pin(path, digest)
    assert tl.load_study(path).name == "quad"  # unchanged: imported as usual


def test_a_symlink_re_pointed_after_the_check_is_refused(write_experiment, tmp_path):
    """A pin holds for the path as it was named, not only for the file it resolved to then."""
    import hashlib

    from tuneloop._load import load_module, pinned_env

    checked = write_experiment(textwrap.dedent(QUADRATIC_EXPERIMENT), name="checked.py")
    other = write_experiment(textwrap.dedent(QUADRATIC_EXPERIMENT) + "\nprint('swapped in')\n", name="other.py")
    link = tmp_path / "exp_link.py"
    link.symlink_to(checked)
    env = pinned_env({str(link): hashlib.sha256(checked.read_bytes()).hexdigest()})
    link.unlink()
    link.symlink_to(other)
    import os

    os.environ["TUNELOOP_PINNED"] = env["TUNELOOP_PINNED"]  # restored by the autouse fixture
    with pytest.raises(tl.ConfigError, match="changed after tuneloop checked it"):
        load_module(link)
