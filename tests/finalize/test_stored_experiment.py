"""finalize without --file imports the stored experiment path only when this user ran that very
file on this machine (issue 15: a database may be someone else's, and naming a file is running it)."""

import hashlib
import hmac

import pytest
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.cli import app

EXPERIMENT = """
    import tuneloop as tl
    import trial_functions as tf

    study = tl.Study("members", tl.Space(k=tl.Choice([0, 1, 2])), tf.ensemble_member, metric="val_acc",
                     mode="max", budget={"epochs": 6}, searcher="grid")
"""
EVIL = "open(__file__ + '.ran', 'w').close()\n"  # what running it would do: leave a mark


@pytest.fixture
def key_home(tmp_path, monkeypatch):
    """This test's own config folder, where the user's signing key lives."""
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    return home


def invoke(*args):
    result = CliRunner().invoke(app, [*map(str, args)])
    assert "Traceback" not in result.output
    return result


def refused(result, why):
    assert result.exit_code == 1, result.output
    assert why in result.output and "--file PATH" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output  # one line


def test_the_file_this_machine_ran_is_trusted_until_it_changes(write_experiment, key_home):
    path = write_experiment(EXPERIMENT)
    assert invoke("run", path).exit_code == 0
    config = tl.Store("tuneloop.db").require_study("members").config
    assert config["experiment"] == str(path.resolve())
    assert config["experiment_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (key_home / "tuneloop" / "trust.key").stat().st_mode & 0o077 == 0  # the key is the user's alone
    path.write_text(path.read_text() + "\n" + EVIL)  # changed after the run (by anyone who can write there)
    refused(invoke("finalize", "members", "--top", "1", "--seeds", "1"), "changed since this machine ran it")
    assert not path.with_name(path.name + ".ran").exists()
    assert invoke("run", path).exit_code == 0  # running it again vouches for the file as it is now
    done = invoke("finalize", "members", "--top", "1", "--seeds", "1")
    assert done.exit_code == 0, done.output


def test_a_database_from_elsewhere_names_a_file_that_is_never_imported(write_experiment, key_home, tmp_path):
    evil = tmp_path / "evil.py"
    evil.write_text(EVIL)
    digest = hashlib.sha256(evil.read_bytes()).hexdigest()
    path = write_experiment(EXPERIMENT)
    assert invoke("run", path).exit_code == 0
    store = tl.Store("tuneloop.db")
    record = store.require_study("members")
    forged_key = b"k" * 32  # the attacker's own key: the right hash, a signature this user never made
    forged = hmac.new(forged_key, f"tuneloop-experiment-v1\0{evil}\0{digest}".encode(), hashlib.sha256).hexdigest()
    for config in ({"experiment": str(evil)},  # an old-style record: a path alone
                   {"experiment": str(evil), "experiment_sha256": digest, "experiment_signature": forged},
                   {"experiment": str(evil), "experiment_sha256": digest, "experiment_signature": "é" * 64},
                   {"experiment": ["not", "a", "path"], "experiment_sha256": 1, "experiment_signature": None}):
        store.update_study_config(record.id, {**record.config, **config})
        refused(invoke("finalize", "members", "--top", "1", "--seeds", "1"), "did not record running it")
        assert not (tmp_path / "evil.py.ran").exists()
    store.update_study_config(record.id, record.config)  # the genuine record, but on a machine without the key
    (key_home / "tuneloop" / "trust.key").unlink()
    refused(invoke("finalize", "members", "--top", "1", "--seeds", "1"), "did not record running it")
    named = invoke("finalize", "members", "--top", "1", "--seeds", "1", "--file", path)  # the user names it
    assert named.exit_code == 0, named.output


def test_a_vouched_file_that_is_gone_says_so(write_experiment, key_home):
    path = write_experiment(EXPERIMENT)
    assert invoke("run", path).exit_code == 0
    path.unlink()
    refused(invoke("finalize", "members", "--top", "1", "--seeds", "1"), "is gone")
