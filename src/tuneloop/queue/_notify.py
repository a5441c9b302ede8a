"""Notifications from ``tuneloop queue run``: a Slack-compatible webhook and SMTP mail.

What is sent: one message per failed job as it fails (its id, title, exit code, reason and the last
lines of its output), and one summary when the runner stops (the queue empty, the window ended, the
queue paused, Ctrl-C/SIGTERM, an error): jobs done and failed, jobs left queued with their reasons,
machine time. Messages are plain text: stored strings lose their control characters, and the webhook's
text has Slack's three control characters escaped (``<!channel>`` in a job's title pings no one) and
formatting turned off (``"mrkdwn": false``).

Delivery never stops or fails the runner: a message that cannot be delivered is one warning line
(``could not notify https://hooks.slack.com: HTTP Error 404: Not Found``), naming only the URL's scheme
and host, since a webhook's path is its secret (so is ``--notify-url`` itself: pass it as
``TUNELOOP_NOTIFY_URL`` to keep it out of the shell's history and ``ps``). Messages are sent in order by
one background thread (a slow server does not hold up the next job); the summary goes last, and the
runner's end waits for it at most ``CLOSE_WAIT`` seconds.

    >>> Notifier().send("subject", "text")  # no channel: nothing is sent
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import smtplib
import socket
import ssl
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any

from tuneloop._text import plain
from tuneloop.errors import ConfigError

TIMEOUT = 10.0  # seconds one delivery may take (connect, send, answer)
SLACK_TEXT = 40_000  # Slack truncates a message's text past this many characters
MAIL_TEXT = 100_000  # characters of a mail's body
SUBJECT = 200  # characters of a mail's subject (one line)
TAIL_LINES = 20  # lines of a failed job's output in its message
CLOSE_WAIT = 60.0  # seconds the runner's end waits for the messages still to send
_ENV_URL, _ENV_SMTP, _ENV_USER, _ENV_PASSWORD = ("TUNELOOP_NOTIFY_URL", "TUNELOOP_SMTP", "TUNELOOP_SMTP_USER",
                                                 "TUNELOOP_SMTP_PASSWORD")
SECRETS = (_ENV_URL, _ENV_PASSWORD)  # kept out of the jobs' environment: a job's output is stored and sent


def where(url: str) -> str:
    """What a message may say of a webhook URL: its scheme and host (and port), never its path, query or
    credentials."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # a bracket left open ("http://[x/..."): no host to name
        scheme = url.partition(":")[0]
        return f"{scheme if scheme.isascii() and scheme.isalpha() and len(scheme) <= 10 else '?'}://?"
    host = parts.hostname or "?"
    with contextlib.suppress(ValueError):
        host += f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}"


def check_url(url: str) -> str:
    """A webhook URL: http or https with a host; ConfigError (naming only its scheme and host) otherwise."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:  # that, or a bracket left open ("http://[x/...")
        parts = urllib.parse.SplitResult("", "", "", "", "")
    if any(c.isspace() or not c.isprintable() for c in url.strip()):  # http.client's error would quote the path
        raise ConfigError(f"--notify-url (or {_ENV_URL}) has a space or a control character in it (a line break "
                          f"pasted in?); got one starting {where(url.strip())!r:.60}.")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--notify-url (or {_ENV_URL}) takes an http or https URL such as a Slack webhook "
                          f"(https://hooks.slack.com/services/...); got one starting {where(url)!r:.60}.")
    return url.strip()


def check_smtp(text: str) -> tuple[str, int]:
    """``--smtp HOST[:PORT]`` (port 25 by default; 465 is TLS from the start, others use STARTTLS when offered)."""
    host, _, port = text.strip().rpartition(":") if ":" in text else (text.strip(), "", "25")
    host = host.strip("[]")
    if (not host or any(c.isspace() or c in "/@" for c in host) or not (port.isascii() and port.isdigit())
            or not 0 < int(port) < 65536):
        raise ConfigError(f"--smtp (or {_ENV_SMTP}) takes HOST or HOST:PORT, e.g. smtp.example.com:587; got "
                          f"{text!r:.60}.")
    return host, int(port)


def check_address(text: str) -> str:
    """``--notify-email``: one mail address."""
    _, address = parseaddr(text)
    if not address or address != text.strip() or address.count("@") != 1 or any(c.isspace() for c in address):
        raise ConfigError(f"--notify-email takes one mail address such as you@example.com; got {text!r:.60}.")
    return address


def _warn(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # the terminal is gone: the sender thread goes on with the next message
        pass


class Notifier:
    """Where the runner's messages go: nowhere by default; a webhook (``url``) and/or mail to ``email``
    through the SMTP server ``smtp`` (``(host, port)``), logging in as ``user`` when given."""

    def __init__(self, *, url: str | None = None, email: str | None = None, smtp: tuple[str, int] | None = None,
                 user: str | None = None, password: str | None = None,
                 warn: Callable[[str], None] = _warn) -> None:
        if email is not None and smtp is None:
            raise ConfigError(f"--notify-email sends mail through an SMTP server: pass --smtp HOST[:PORT] (or set "
                              f"{_ENV_SMTP}).")
        self.url = None if url is None else check_url(url)
        self.email = None if email is None else check_address(email)
        self.smtp, self.user, self.password, self.warn = smtp, user, password, warn
        self._outbox: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()  # None: the last
        self._sender: threading.Thread | None = None
        self._lock = threading.Lock()  # slot threads send at once: one sender thread is ever started

    @classmethod
    def from_options(cls, url: str | None, email: str | None, smtp: str | None,
                     env: Mapping[str, str] | None = None, warn: Callable[[str], None] = _warn) -> Notifier:
        """The command line's options, each falling back on its environment variable."""
        env = os.environ if env is None else env
        if smtp is not None and email is None:
            raise ConfigError("--smtp names the server that mails --notify-email ADDRESS; pass that too (or drop "
                              "--smtp).")
        url = url or env.get(_ENV_URL) or None
        smtp = smtp or env.get(_ENV_SMTP) or None
        return cls(url=url, email=email, smtp=None if smtp is None or email is None else check_smtp(smtp),
                   user=env.get(_ENV_USER) or None, password=env.get(_ENV_PASSWORD), warn=warn)

    @property
    def channels(self) -> list[str]:
        """Where messages go, as a warning names them."""
        out = [] if self.url is None else [where(self.url)]
        if self.email is not None and self.smtp is not None:
            out.append(f"{self.email} via smtp://{self.smtp[0]}:{self.smtp[1]}")
        return out

    def send(self, subject: str, text: str) -> None:
        """Deliver one message in the background: one sender thread, in order (:meth:`close` waits for it)."""
        if not self.channels:
            return
        with self._lock:
            if self._sender is None:
                self._sender = threading.Thread(target=self._drain, name="queue-notify", daemon=True)
                self._sender.start()
            self._outbox.put((subject, text))

    def close(self, last: tuple[str, str] | None = None) -> None:
        """Deliver ``last`` (the summary) after the messages under way, waiting at most ``CLOSE_WAIT`` s in
        all (a server that takes each message's whole timeout must not keep the runner from exiting)."""
        if not self.channels:
            return
        if last is not None:
            self.send(*last)
        with self._lock:
            sender, self._sender = self._sender, None
            if sender is None:
                return
            self._outbox.put(None)
        sender.join(timeout=CLOSE_WAIT)
        if sender.is_alive():
            self.warn(f"could not notify {', '.join(self.channels)}: {self._outbox.qsize()} messages still unsent "
                      f"after {CLOSE_WAIT:.0f} s; given up")

    def _drain(self) -> None:
        while (message := self._outbox.get()) is not None:
            self._deliver(*message)

    def _deliver(self, subject: str, text: str) -> None:
        if self.url is not None:
            self._try(where(self.url), lambda: self._post(text))
        if self.email is not None and self.smtp is not None:
            self._try(self.channels[-1], lambda: self._mail(subject, text))

    def _try(self, name: str, deliver: Callable[[], None]) -> None:
        try:
            deliver()
        except Exception as exc:  # noqa: BLE001 - a message that cannot be delivered never stops the runner
            self.warn(f"could not notify {name}: {self._reason(exc)}")

    def _reason(self, exc: BaseException) -> str:
        """The error in one line, with nothing of the webhook's URL but its scheme and host."""
        reason = exc.reason if isinstance(exc, urllib.error.URLError) and not isinstance(
            exc, urllib.error.HTTPError) else exc
        text = plain(reason) or type(exc).__name__
        if self.url is not None:
            parts = urllib.parse.urlsplit(self.url)
            for secret in (self.url, parts.path, parts.query, parts.password, parts.username):
                if secret and len(secret) > 1:
                    text = text.replace(secret, "...")
        if self.password:
            text = text.replace(self.password, "...")
        return text[:300]

    def _post(self, text: str) -> None:
        assert self.url is not None
        body = json.dumps({"text": _slack_text(text), "mrkdwn": False}).encode()
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "tuneloop"})
        opener = urllib.request.build_opener(_NoRedirect)  # a redirect would carry the message elsewhere
        with opener.open(request, timeout=TIMEOUT) as answer:
            answer.read(1024)

    def _mail(self, subject: str, text: str) -> None:
        assert self.email is not None and self.smtp is not None
        message = EmailMessage()
        message["Subject"] = " ".join(plain(subject).split())[:SUBJECT]  # one line: U+2028 is a line break too
        message["From"] = self.user if self.user and "@" in self.user else f"tuneloop@{socket.gethostname()}"
        message["To"] = self.email
        message["Date"] = formatdate(localtime=True)
        message.set_content(_cut(text, MAIL_TEXT))
        host, port = self.smtp
        context = ssl.create_default_context()
        server: smtplib.SMTP = (smtplib.SMTP_SSL(host, port, timeout=TIMEOUT, context=context) if port == 465
                                else smtplib.SMTP(host, port, timeout=TIMEOUT))
        with server:
            server.ehlo()
            if port != 465 and server.has_extn("starttls"):
                server.starttls(context=context)
                server.ehlo()
            elif port != 465 and self.user:
                raise ConnectionError("the server offers no STARTTLS, so the password is not sent in the clear")
            if self.user:
                server.login(self.user, self.password or "")
            server.send_message(message)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx is then an HTTPError: a warning, not a message sent elsewhere


def _slack_text(text: str) -> str:
    """Slack reads ``<...>`` as links and mentions and ``&`` as an entity: escaped, so text stays text;
    then cut to Slack's limit (never inside an entity)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if len(text) > SLACK_TEXT:
        text = text[:SLACK_TEXT - len(_CUT)]
        entity = text.rfind("&", len(text) - 5)
        if entity >= 0 and ";" not in text[entity:]:
            text = text[:entity]
        text += _CUT
    return text


_CUT = "\n... (cut: the message was too long)"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - len(_CUT)] + _CUT


def _tail(tail: str) -> list[str]:
    lines = [plain(line)[:300] for line in tail.splitlines() if line.strip()]
    return lines[-TAIL_LINES:]


def failure_message(job_id: int, title: str, code: int | None, reason: str | None, tail: str) -> tuple[str, str]:
    """(subject, text) of a failed job's message."""
    host = socket.gethostname()
    subject = f"tuneloop queue on {host}: job {job_id} failed ({plain(title)[:80]})"
    lines = [f"tuneloop queue on {plain(host)}: job {job_id} failed: {plain(title)[:300]}",
             f"exit code: {'none (it did not run)' if code is None else code}",
             f"reason: {plain(reason or 'unknown')[:1000]}"]
    last = _tail(tail)
    if last:
        lines += [f"last {len(last)} lines of its output:", *(f"  {line}" for line in last)]
    lines.append(f"tuneloop queue show {job_id} shows its output.")
    return subject, "\n".join(lines)


def summary_message(summary: Any, queued: Iterable[tuple[int, str, str | None, bool]],
                    duration: Callable[[float], str]) -> tuple[str, str]:
    """(subject, text) of the message at the runner's end: ``summary`` a runner's ``Summary``, ``queued``
    the jobs still queued as (id, title, reason, held); ``duration`` writes seconds as a person reads them."""
    host = plain(socket.gethostname())
    done = sum(state == "done" for _, state in summary.ran)
    failed = [job_id for job_id, state in summary.ran if state == "failed"]
    queued = list(queued)
    counts = f"{done} done, {len(failed)} failed, {len(queued)} left queued"
    subject = f"tuneloop queue on {host}: {counts} ({plain(summary.stopped) or 'stopped'})"
    lines = [f"tuneloop queue on {host} stopped: {plain(summary.stopped) or 'stopped'}.",
             f"Jobs: {counts}.",
             f"Machine time: {duration(summary.busy_s)} of jobs in {duration(summary.wall_s)}."]
    if failed:
        lines.append("Failed:")
        lines += [f"  job {i} ({plain(summary.titles.get(i, ''))[:200]}): {plain(summary.reasons.get(i, ''))[:300]}"
                  for i in failed[:100]]
    if queued:
        lines.append("Left queued:")
        for job_id, title, reason, held in queued[:100]:
            why = reason or ("held (tuneloop queue resume ID)" if held else "not reached")
            lines.append(f"  job {job_id} ({plain(title)[:200]}): {plain(why)[:300]}")
        if len(queued) > 100:
            lines.append(f"  ... and {len(queued) - 100} more (tuneloop queue list)")
    return subject, "\n".join(lines)

