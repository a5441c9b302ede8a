"""Notifications from ``tuneloop queue run``, delivered to real servers on 127.0.0.1: a webhook
(``http.server`` in a thread) and SMTP (``aiosmtpd``). A message that cannot be delivered is one
warning line and never fails the runner; the webhook's secret path is never printed."""

import email
import email.policy
import socket

import pytest

from tuneloop.queue._notify import SLACK_TEXT, Notifier, _slack_text, check_url, failure_message, where
from tuneloop.queue._runner import Summary, duration
from tuneloop.store import JobState, Store

SECRET = "/services/T000/B000/s3cr3tPath"


def _refused_port():
    """A port on 127.0.0.1 nothing listens on (bound, then closed: connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _forged(db, title):
    """A job someone else wrote into the database: refused (failed) at once, nothing runs."""
    with Store(f"sqlite:///{db}") as store:
        store.add_job("run", ["/nowhere/exp.py"], title, files={}, signature="0" * 64)


def test_a_failed_job_and_the_end_each_post_one_plain_text_message(cli, tmp_path, hook, monkeypatch):
    url, seen = hook
    db = tmp_path / "q.db"
    _forged(db, "<!channel> *bold* [red]x[/]")
    _forged(db, "second")
    with Store(f"sqlite:///{db}") as store:
        store.add_job("run", ["/nowhere/b.py"], "held", files={}, signature=None)
        store.pause_job(3)
    monkeypatch.setenv("TUNELOOP_NOTIFY_URL", url + SECRET)  # the secret stays in the environment
    result = cli("queue", "run", "--storage", db)
    assert result.exit_code == 0 and "Ran 2 jobs (0 done, 2 failed)" in result.output, result.output
    assert [path for path, _, _ in seen] == [SECRET] * 3 and all(kind == "application/json" for _, kind, _ in seen)
    failures, (end,) = sorted(seen[:2], key=lambda s: s[2]["text"]), [s[2] for s in seen[2:]]
    assert [f[2]["text"].split("\n")[0].split(": job ")[1] for f in failures] == [
        "1 failed: &lt;!channel&gt; *bold* [red]x[/]", "2 failed: second"]  # Slack's controls escaped
    assert all(f[2]["mrkdwn"] is False and "did not queue it on this machine" in f[2]["text"] for f in failures)
    assert "stopped: the queue is empty." in end["text"] and "Jobs: 0 done, 2 failed, 1 left queued." in end["text"]
    assert "job 3 (held): held (tuneloop queue resume ID)" in end["text"] and "Machine time:" in end["text"]
    assert "could not notify" not in result.output and f"queue: notifying {url}\n" in result.output
    assert "s3cr3t" not in result.output


def test_an_undeliverable_message_is_one_warning_and_the_runner_still_succeeds(cli, tmp_path, hook):
    url, seen = hook
    db = tmp_path / "q.db"
    _forged(db, "forged")
    port = _refused_port()
    result = cli("queue", "run", "--notify-url", f"http://user:pw@127.0.0.1:{port}{SECRET}", "--storage", db)
    assert result.exit_code == 0 and "Ran 1 jobs (0 done, 1 failed)" in result.output, result.output
    warnings = [line for line in result.output.splitlines() if "could not notify" in line]
    assert len(warnings) == 2 and all(w.startswith(f"Warning: could not notify http://127.0.0.1:{port}: ")
                                      for w in warnings), result.output  # the failure's message, the summary's
    assert "s3cr3t" not in result.output and "pw" not in result.output and "Traceback" not in result.output

    _forged(db, "again")  # a server that answers 404: the same
    gone = cli("queue", "run", "--notify-url", url + "/gone", "--storage", db)
    assert gone.exit_code == 0 and "could not notify http://127.0.0.1" in gone.output, gone.output
    assert "HTTP Error 404: Not Found" in gone.output and "/gone" not in gone.output and len(seen) == 2


@pytest.mark.slow
def test_a_job_that_fails_sends_its_exit_code_and_last_lines(cli, tmp_path, hook, monkeypatch):
    url, seen = hook
    db, path = tmp_path / "q.db", tmp_path / "exp.py"
    path.write_text("import tuneloop as tl\nprint('line one')\nraise SystemExit('it broke: <@U123>')\n")
    assert cli("queue", "add", "check", path, "--storage", db).exit_code == 0
    monkeypatch.setenv("TUNELOOP_NOTIFY_URL", url + SECRET)
    result = cli("queue", "run", "--storage", db)
    assert result.exit_code == 0 and "Ran 1 jobs (0 done, 1 failed)" in result.output, result.output
    (failure, end) = [body["text"] for _, _, body in seen]
    assert "job 1 failed: check exp.py" in failure and "exit code: 1" in failure, failure
    assert "line one" in failure and "it broke: &lt;@U123&gt;" in failure and "reason: exit code 1" in failure
    assert "Jobs: 0 done, 1 failed, 0 left queued." in end


@pytest.fixture
def inbox():
    """A real SMTP server on 127.0.0.1 (aiosmtpd, no TLS): (its port, the mails: (recipients, message))."""
    from aiosmtpd.controller import Controller

    class Handler:
        def __init__(self):
            self.mails = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
            self.mails.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content,
                                                                           policy=email.policy.default)))
            return "250 OK"

    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=_refused_port())
    controller.start()
    yield controller.port, handler.mails
    controller.stop()


def test_mail_goes_to_a_real_smtp_server_with_subject_and_body(cli, tmp_path, monkeypatch, inbox):
    port, mails = inbox
    db = tmp_path / "q.db"
    _forged(db, "forged\nSubject: injected")
    monkeypatch.setenv("TUNELOOP_SMTP", f"127.0.0.1:{port}")
    result = cli("queue", "run", "--notify-email", "me@example.com", "--storage", db)
    assert result.exit_code == 0 and "could not notify" not in result.output, result.output
    assert [to for to, _ in mails] == [["me@example.com"]] * 2
    (_, failure), (_, end) = mails
    assert failure["Subject"].endswith("job 1 failed (forged Subject: injected)")  # one line: no header injected
    assert "did not queue it on this machine" in failure.get_content()
    assert end["Subject"].endswith(": 0 done, 1 failed, 0 left queued (the queue is empty)")
    assert "Jobs: 0 done, 1 failed, 0 left queued." in end.get_content() and end["To"] == "me@example.com"


def test_a_password_is_never_sent_to_a_server_without_tls(cli, tmp_path, monkeypatch, inbox):
    port, mails = inbox
    db = tmp_path / "q.db"
    _forged(db, "forged")
    monkeypatch.setenv("TUNELOOP_SMTP_USER", "me@example.com")
    monkeypatch.setenv("TUNELOOP_SMTP_PASSWORD", "hunter2")
    result = cli("queue", "run", "--notify-email", "me@example.com", "--smtp", f"127.0.0.1:{port}", "--storage", db)
    assert result.exit_code == 0 and mails == [], result.output
    assert result.output.count(f"could not notify me@example.com via smtp://127.0.0.1:{port}: the server offers no "
                               f"STARTTLS, so the password is not sent in the clear") == 2, result.output
    assert "hunter2" not in result.output


def test_urls_are_named_by_scheme_and_host_only_and_long_texts_are_cut():
    assert where("https://user:pw@hooks.slack.com/services/T/B/x?q=1") == "https://hooks.slack.com"
    assert where("http://127.0.0.1:8080/a/b") == "http://127.0.0.1:8080"
    for bad in ("ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)", "https:///nohost",
                "http://host:port/x"):
        with pytest.raises(Exception, match="takes an http or https URL") as info:
            check_url(bad)
        assert "/x" not in str(info.value) and "passwd" not in str(info.value)
    subject, text = failure_message(3, "t" * 500, 2, "r\x1b[2J" * 10, "\n".join(f"l{n}" for n in range(100)))
    assert "\x1b" not in text and "l99" in text and "l79" not in text and len(subject) < 200
    for long in ("<" * 100_000, "x<" * 30_000):
        cut = _slack_text(long)  # escaped, then within Slack's limit, never ending inside an entity
        assert len(cut) <= SLACK_TEXT and cut.endswith("(cut: the message was too long)")
        assert cut.split("\n")[0].replace("&lt;", "").replace("x", "") == ""
    Notifier().close(("subject", "text"))  # no channel: nothing to do, nothing raised


def test_the_summary_counts_jobs_and_names_those_left_queued():
    from tuneloop.queue._notify import summary_message

    summary = Summary(ran=[(1, JobState.DONE), (2, JobState.FAILED)], stopped="the window ended",
                      titles={1: "a", 2: "b"}, reasons={2: "exit code 3: boom"}, busy_s=7200, wall_s=1800)
    subject, text = summary_message(summary, [(4, "c", "estimated 2.1 h, 1.4 h left in the window", False),
                                              (5, "d", None, False)], duration)
    assert subject.endswith("1 done, 1 failed, 2 left queued (the window ended)") and "\n" not in subject
    assert "Machine time: 2.0 h of jobs in 30 min." in text and "job 2 (b): exit code 3: boom" in text
    assert "job 4 (c): estimated 2.1 h, 1.4 h left in the window" in text and "job 5 (d): not reached" in text


def test_failures_sent_from_several_slots_at_once_start_one_sender_and_the_summary_goes_last(hook):
    """Slot threads send failures concurrently: one sender thread, in order, so close() waits for every message
    and the summary is the last one delivered (two senders: close() joined one, the other's message was lost)."""
    import sys
    import threading

    url, seen = hook
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch as often as they can: the check-then-start race shows at once
    try:
        for round_ in range(30):
            notifier = Notifier(url=url + SECRET, warn=lambda line: None)
            gate = threading.Barrier(8)

            def fail(n, notifier=notifier, gate=gate, round_=round_):
                gate.wait()
                notifier.send("subject", f"round {round_} failure {n}")

            threads = [threading.Thread(target=fail, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            senders = sum(t.name == "queue-notify" and t.is_alive() for t in threading.enumerate())
            notifier.close(("summary", f"round {round_} summary"))
            assert senders == 1, f"round {round_}: {senders} sender threads"
            texts = [body["text"] for _, _, body in seen if body["text"].startswith(f"round {round_} ")]
            assert len(texts) == 9 and texts[-1] == f"round {round_} summary", texts
    finally:
        sys.setswitchinterval(interval)


def test_a_title_with_a_unicode_line_separator_still_mails_a_one_line_subject(cli, tmp_path, monkeypatch, inbox):
    """U+2028/U+2029 are line breaks to the email package (plain() keeps them): a stored title holding one made
    the failure's mail raise 'Header values may not contain linefeed', so no mail said the job failed."""
    port, mails = inbox
    db = tmp_path / "q.db"
    _forged(db, "forged\u2028Bcc: evil@example.com\u2029x\x85y")
    monkeypatch.setenv("TUNELOOP_SMTP", f"127.0.0.1:{port}")
    result = cli("queue", "run", "--notify-email", "me@example.com", "--storage", db)
    assert result.exit_code == 0 and "could not notify" not in result.output, result.output
    assert [to for to, _ in mails] == [["me@example.com"]] * 2
    (_, failure), _ = mails
    assert failure["Subject"].endswith("job 1 failed (forged Bcc: evil@example.com xy)"), failure["Subject"]
    assert failure["Bcc"] is None


@pytest.mark.slow
def test_the_notification_secrets_never_reach_a_job_nor_its_stored_output(cli, tmp_path, hook, monkeypatch):
    """A job's output is stored (queue show) and sent in its failure's message: a job printing its
    environment (a crash report, a logger) must not find the webhook's URL or the SMTP password there."""
    from shared import sqlite_rows

    url, seen = hook
    db, path = tmp_path / "q.db", tmp_path / "exp.py"
    path.write_text("import os\nprint(sorted(os.environ.items()))\nraise SystemExit(1)\n")
    assert cli("queue", "add", "check", path, "--storage", db).exit_code == 0
    monkeypatch.setenv("TUNELOOP_NOTIFY_URL", url + SECRET)
    monkeypatch.setenv("TUNELOOP_SMTP_USER", "me")
    monkeypatch.setenv("TUNELOOP_SMTP_PASSWORD", "hunter2")
    result = cli("queue", "run", "--storage", db)
    assert result.exit_code == 0 and "Ran 1 jobs (0 done, 1 failed)" in result.output, result.output
    ((tail,),) = sqlite_rows(db, "select tail from jobs where id = 1")
    assert "TUNELOOP_STORAGE" in tail  # it did print its environment
    for secret in ("s3cr3t", "hunter2"):
        assert secret not in tail and secret not in result.output and not any(secret in b["text"] for _, _, b in seen)
