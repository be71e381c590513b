"""Pure decisions of the ACME client: polling waits and renewal times.

No I/O and no clock reads: every function takes ``now`` (or a monotonic
elapsed time) and, where it jitters, a ``random.Random`` the caller
seeds. Covers:

- ``Retry-After`` in both of its forms (RFC 9110 section 10.2.3: delay
  seconds or an HTTP-date; a date in the past means "now"), as RFC 8555
  section 7.4 asks clients to honour while an order is ``processing``;
- bounded exponential backoff when the server sends no ``Retry-After``,
  after one quick first look;
- the renewal time of a certificate: when a third of its lifetime is
  left (half, for lifetimes of ten days or less), earlier when the
  server's renewal information (RFC 9773 section 4.2) suggests a window
  that starts sooner, jittered earlier, never later;
- backoff after failed renewals, and spreading certificates that are
  all due at once (at boot) so they do not renew in one storm.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import random

#: One quick look before the backoff begins, when the server's answer to
#: the client's own request (challenge or finalize) gave no Retry-After:
#: a local or fast server is often done by then.
FIRST_LOOK = 0.05
#: First backoff wait when a poll answers without Retry-After (field
#: report 17c).
BACKOFF_INITIAL = 1.0
#: Longest wait between polls without Retry-After.
BACKOFF_CAP = 16.0
#: How long an order may stay pending or processing (field report 17d).
ORDER_TIMEOUT = 60.0

#: Lifetimes up to this renew at half their lifetime, longer ones at a
#: third left.
SHORT_LIFETIME = dt.timedelta(days=10)
#: Jitter moves a renewal earlier by up to this share of the lifetime.
JITTER_SHARE = 0.05
#: Failed renewals retry after RETRY_INITIAL * 2**(failures-1), capped.
RETRY_INITIAL = dt.timedelta(minutes=5)
RETRY_CAP = dt.timedelta(hours=6)
#: Certificates due at the same moment start at least this far apart.
BOOT_SPACING = dt.timedelta(seconds=30)


def parse_retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Seconds to wait for a ``Retry-After`` header value.

    ``None`` when the header is absent or unparsable (the caller then
    backs off on its own); ``0.0`` for an HTTP-date in the past.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def backoff(attempt: int, initial: float = BACKOFF_INITIAL,
            cap: float = BACKOFF_CAP) -> float:
    """The wait before poll ``attempt`` (0-based) with no Retry-After."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    return float(min(cap, initial * (2 ** min(attempt, 32))))


def poll_wait(attempt: int, retry_after: float | None, elapsed: float,
              timeout: float = ORDER_TIMEOUT) -> float | None:
    """How long to wait before poll ``attempt`` (0-based), or ``None``
    when the order has run out of time (``elapsed`` seconds since polling
    began).

    A server's Retry-After is honoured as given; it is not shortened,
    so a wait that would end past the timeout means the order timed out.
    Without one: :data:`FIRST_LOOK` before the first poll, then
    exponential backoff from :data:`BACKOFF_INITIAL` up to
    :data:`BACKOFF_CAP`.
    """
    if retry_after is not None:
        wait = retry_after
    elif attempt == 0:
        wait = FIRST_LOOK
    else:
        wait = backoff(attempt - 1)
    if elapsed + wait > timeout:
        return None
    return wait


@dataclasses.dataclass(frozen=True)
class RenewalWindow:
    """An RFC 9773 ``suggestedWindow`` (start <= end)."""

    start: dt.datetime
    end: dt.datetime


def renewal_threshold(not_before: dt.datetime,
                      not_after: dt.datetime) -> dt.datetime:
    """When a certificate is due without jitter: a third of its lifetime
    left, or half for lifetimes of ten days or less."""
    lifetime = not_after - not_before
    if lifetime <= dt.timedelta(0):
        raise ValueError("notAfter is not after notBefore")
    share = 0.5 if lifetime <= SHORT_LIFETIME else 1 / 3
    return not_after - lifetime * share


def renewal_time(not_before: dt.datetime, not_after: dt.datetime,
                 rng: random.Random,
                 window: RenewalWindow | None = None) -> dt.datetime:
    """When to renew: the threshold moved earlier by a jitter of up to
    :data:`JITTER_SHARE` of the lifetime; or, when the server's renewal
    window starts sooner than that, a uniformly chosen time inside the
    window (RFC 9773 section 4.2). Never later than the threshold."""
    own = renewal_threshold(not_before, not_after)
    own -= (not_after - not_before) * (JITTER_SHARE * rng.random())
    if window is not None and window.start < own:
        if window.end < window.start:
            raise ValueError("renewal window ends before it starts")
        span = (window.end - window.start).total_seconds()
        return min(own, window.start + dt.timedelta(
            seconds=span * rng.random()))
    return own


def retry_after_failure(failures: int, now: dt.datetime,
                        not_after: dt.datetime,
                        rng: random.Random) -> dt.datetime:
    """The next attempt after ``failures`` (>= 1) failed renewals:
    exponential from :data:`RETRY_INITIAL`, capped at :data:`RETRY_CAP`
    and at half the time left before expiry, with up to 10% jitter."""
    if failures < 1:
        raise ValueError("failures must be >= 1")
    wait = min(RETRY_CAP, RETRY_INITIAL * (1 << min(failures - 1, 32)))
    left = not_after - now
    if left > dt.timedelta(0):
        wait = min(wait, max(left / 2, dt.timedelta(seconds=60)))
    jitter = 1 - 0.1 * float(rng.random())
    return now + wait * jitter


def spread(due: dict[str, dt.datetime], now: dt.datetime,
           rng: random.Random,
           expires: dict[str, dt.datetime] | None = None,
           spacing: dt.timedelta = BOOT_SPACING) -> dict[str, dt.datetime]:
    """Renewal times with no storm: every certificate whose time is at or
    before ``now`` gets its own slot ``spacing`` apart, the one expiring
    soonest first (``expires``, else its renewal time), jittered inside
    its slot; the others keep their time."""
    order = expires or due
    overdue = sorted((order.get(h, t), h) for h, t in due.items()
                     if t <= now)
    out = {h: t for h, t in due.items() if t > now}
    for slot, (_, handle) in enumerate(overdue):
        out[handle] = now + spacing * (slot + rng.random())
    return out
