"""Notification emails: default templates, admin overrides, validation and rendering.  Pure: no I/O.

Every email has a `kind`, a recipient locale ("en" or "vi") and a context dict.  Workspace admins may override
any kind+locale (subject, text, html); `validate` checks an override before it is saved and `render` builds the
email.  Templates are Jinja2 in an immutable sandbox, because admins write them and must not reach Python
internals or mutate the context.  The html part is a fragment: `render` sanitises it and wraps it in a layout.

Context variables (all optional when rendering; `validate` checks templates against `sample_context(kind)`):
  common (every kind):
    workspace_name   -- str, shown in the email header and sign-off
    recipient_name   -- str, used in the greeting
    ticket           -- dict: reference ("T-000123"), subject, status, priority, url, requester_name
                        (every kind but daily_summary, digest, digest_reply_refused, mailbox_claim_removed and
                        account_changed;
                        status/priority may be codes, see filters)
    unsubscribe_url  -- str, http(s) link to the recipient's notification preferences, shown in the footer
  ticket_created     -- nothing more (acknowledgement to the customer)
  assigned           -- actor_name: who assigned it; empty when routing assigned it automatically
  reply_to_customer  -- message: dict author_name, text, html (html already sanitised; either text or html suffices)
  reply_to_agent     -- message: as above
  status_changed     -- old_status, new_status: status codes ("WAITING_ON_CUSTOMER") or human words
  sla_warning        -- clock ("first response" | "next response" | "resolution"), due_at: preformatted str,
                        percent: the share of the target used at this level, as the policy sets it ("75")
  sla_critical       -- clock, due_at, percent: as above
  sla_breached       -- clock, due_at, percent ("100"): as above
  escalated          -- level: 1-3, reason: str (in English when the SLA monitor wrote it: then system_reason,
                        its parts, has it put in the locale's words before rendering)
  queue_waiting      -- waited_minutes: int, team_name: str
  daily_summary      -- date: preformatted str (the lead's calendar day), team_name, counts: dict created,
                        resolved, open, breached, waiting_in_queue; oldest: list of ticket dicts
  digest             -- items: list of dicts kind, title, text, ticket (dict as above, may be missing), at (str),
                        html (an agent's reply to a customer: as the email shows it, its images by Content-ID;
                        "" for the others)
  digest_reply_refused -- subject: of the recipient's email, which answered one about several tickets (a digest,
                        a daily summary) and so joined none; app_url: where to answer instead (no ticket)
  mailbox_claim_removed -- address: one the recipient's workspace had claimed, unverified, which another
                        workspace (never named) verified; to the workspace's admins (no ticket)
  account_changed    -- change: "password" (the recipient's password was changed) or "email" (staff changed
                        the customer's address: sent to old_email and new_email, both given); reset_url: where
                        to ask for a new password if it was not them ("" without RELAYDESK_APP_URL) (no ticket)
Added by this module (templates may use them; callers need not pass them):
  locale             -- the resolved locale, "en" or "vi"
  digest only: count (number of items), ticket_count, groups: list of dicts ticket (dict or None) and updates
                        (the items about that ticket, in order), one per ticket in order of first appearance
Filters: status_label(audience="customer"|"agent"), priority_label, clock_label localise codes to the locale and
pass anything else through unchanged.
"""

from __future__ import annotations

import html as _html
import re
import string
import sys
import time
from collections import Counter
from collections.abc import Mapping
from itertools import repeat
from operator import itemgetter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import (
    ChainableUndefined, StrictUndefined, Template, TemplateSyntaxError, nodes, pass_context, pass_eval_context,
)
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.filters import make_attrgetter
from jinja2.meta import find_undeclared_variables
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from relaydesk.core.sanitize import html_to_text, sanitize_html, text_to_html
from relaydesk.notifications import default_templates as _defaults

KINDS: tuple[str, ...] = (
    "ticket_created", "assigned", "reply_to_customer", "reply_to_agent", "status_changed",
    "sla_warning", "sla_critical", "sla_breached", "escalated", "queue_waiting", "daily_summary", "digest",
    "digest_reply_refused", "mailbox_claim_removed", "account_changed",
)
LOCALES: tuple[str, ...] = ("en", "vi")
PARTS: tuple[str, ...] = ("subject", "text", "html")
STATUSES: tuple[str, ...] = (
    "OPEN", "ASSIGNED", "IN_PROGRESS", "WAITING_ON_CUSTOMER", "WAITING_INTERNAL", "ESCALATED", "RESOLVED", "CLOSED",
    "REOPENED",
)

SUBJECT_MAX_CHARS = 250
# Bounds what one admin-written part may cost to parse and compile; real templates are a few KB.
SOURCE_MAX_CHARS = 64_000
# What rendering one admin-written part may cost. Templates render on the server's event
# loop, shared by every workspace, and a few nested loops can take minutes: a real
# template needs well under a millisecond. Numbers and repetitions are bounded too, since
# one C-level step ("x" * 10**9, a filter given a width of a billion) is not interruptible.
RENDER_BUDGET_SECONDS = 0.05
LARGEST_NUMBER = 100_000
LONGEST_REPETITION = 100_000
WIDEST_FIELD = 1_000  # a format width, a padding, an indent: real emails need a few dozen
LARGEST_PART = 1_000_000  # characters one rendered part may have, and one join or format may make
# One conversion of ``text % values``: its width, precision and kind.
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?([a-zA-Z%])")
_FORMAT_FIELD = re.compile(r"\{[^{}]*:([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")


@dataclass(frozen=True, slots=True)
class TemplateSource:
    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class TemplateInvalid(ValueError):
    """An admin's template cannot be used; `field` names the part so the editor can point at it."""

    def __init__(self, field: str, message: str, line: int | None = None) -> None:
        self.field = field
        self.message = message
        self.line = line
        where = f" (line {line})" if line is not None else ""
        super().__init__(f"{field}{where}: {message}")


# --- Localised words --------------------------------------------------------------------------------------


def supported_locale(locale: str | None) -> str | None:
    """"vi", "vi-VN", "vi_VN" -> "vi": the locale templates are written in, or None."""
    if not isinstance(locale, str):
        return None
    primary = locale.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in LOCALES else None


def normalize_locale(locale: str | None) -> str:
    """The supported locale, or "en" (every kind has English templates)."""
    return supported_locale(locale) or "en"


def _code(value: str) -> str:
    return value.strip().upper().replace(" ", "_").replace("-", "_")


def status_label(status: str, locale: str, audience: str = "customer") -> str:
    """Human words for a ticket status code; text that is not a known code is returned unchanged."""
    if not status:
        return ""
    labels = _defaults.STATUS_LABELS.get(audience, _defaults.STATUS_LABELS["customer"])
    return labels[normalize_locale(locale)].get(_code(str(status)), str(status))


def priority_label(priority: str, locale: str) -> str:
    if not priority:
        return ""
    return _defaults.PRIORITY_LABELS[normalize_locale(locale)].get(_code(str(priority)), str(priority))


def clock_label(clock: str, locale: str) -> str:
    """"first_response" or "first response" -> the words for that SLA clock in the locale."""
    if not clock:
        return ""
    return _defaults.CLOCK_LABELS[normalize_locale(locale)].get(_code(str(clock)).lower(), str(clock))


def escalation_reason(parts: Mapping[str, Any], locale: str) -> str | None:
    """The words, in the locale, for a reason the SLA monitor gave as parts
    ({"code": "sla_crossed", "clock": "first_response", "level": "breached"}); None for
    parts it does not know, whose English text the caller keeps."""
    words = _defaults.ESCALATION_REASONS[normalize_locale(locale)]
    try:
        match parts.get("code"):
            case "sla_crossed":
                return words[f"sla_{parts['level']}"].format(clock=clock_label(str(parts["clock"]), locale))
            case "second_breach":
                return words["second_breach"]
            case "still_unresolved":
                n = int(parts["minutes"])
                minutes = words["minute"] if n == 1 else words["minutes"].format(n=n)
                return words["still_unresolved"].format(minutes=minutes, after_level=int(parts["after_level"]))
    except (KeyError, TypeError, ValueError):
        pass
    return None


# Filters read the locale from the render context so templates need not pass it (and cannot get it wrong).
@pass_context
def _status_filter(context: Context, value: Any, audience: str = "customer") -> str:
    return status_label(str(value), context.get("locale", "en"), audience)


@pass_context
def _priority_filter(context: Context, value: Any) -> str:
    return priority_label(str(value), context.get("locale", "en"))


@pass_context
def _clock_filter(context: Context, value: Any) -> str:
    return clock_label(str(value), context.get("locale", "en"))


# --- Environments -----------------------------------------------------------------------------------------


def _finalize(value: Any) -> Any:
    # A None in the context (an unset optional field) should read as nothing, not as the word "None".
    return "" if value is None else value


def _check_printf(text: str, values: Any) -> None:
    """``text % values``: no field wider than WIDEST_FIELD, no result larger than LARGEST_PART."""
    specs = _PRINTF_SPEC.findall(text)
    # The distinct numbers, gathered in C: a format may hold tens of thousands of fields.
    numbers = set(map(itemgetter(0), specs)) | set(map(itemgetter(1), specs))
    if any(number == "*" or (number and int(number) > WIDEST_FIELD) for number in numbers):
        raise SecurityError(f"format widths are limited to {WIDEST_FIELD}")
    if isinstance(values, Mapping):
        values = list(values.values())
    elif isinstance(values, tuple):
        values = list(values)
    else:
        values = [values]
    kinds = list(map(itemgetter(2), specs))
    _check_filled(text, len(kinds) - kinds.count("%"), values)


def _check_format(text: str) -> None:
    for spec in _FORMAT_FIELD.findall(text):
        if "{" in spec or any(int(n) > WIDEST_FIELD for n in re.findall(r"\d+", spec)):
            raise SecurityError(f"format widths are limited to {WIDEST_FIELD}")


def _check_width(width: Any) -> None:
    if isinstance(width, int) and width > WIDEST_FIELD:
        raise SecurityError(f"widths are limited to {WIDEST_FIELD}")


def _check_replace(text: str, old: Any, new: Any, count: Any = -1) -> None:
    if isinstance(old, str) and isinstance(new, str) and len(new) > len(old):
        times = text.count(old) if old else len(text) + 1
        if isinstance(count, int) and count >= 0:
            times = min(times, count)
        if times * (len(new) - len(old)) > LONGEST_REPETITION:
            raise SecurityError(f"a replacement may add at most {LONGEST_REPETITION} characters")


def _check_size(size: int) -> None:
    if size > LARGEST_PART:
        raise SecurityError(f"would make a string of over {LARGEST_PART:,} characters")


# Counted with C-level loops where they can be: the budget's trace function makes a
# Python loop over 30,000 values outlast the budget before it could refuse them.
def _lengths(values: list[Any]) -> list[int]:
    """How long each of ``values`` is as text (a non-string's repr: as long as its str()
    or longer, for what a template can make), each distinct one counted once."""
    if all(map(isinstance, values, repeat(str))):
        return list(map(len, values))
    distinct = dict(zip(map(id, values), values, strict=True))
    known = {key: len(value) if isinstance(value, str) else len(repr(value)) for key, value in distinct.items()}
    return list(map(known.__getitem__, map(id, values)))


def _check_join(separator: str, items: list[Any]) -> None:
    _check_size(len(separator) * max(len(items) - 1, 0) + sum(_lengths(items)))


def _check_filled(text: str, fields: int, values: list[Any]) -> None:
    """Each of ``fields`` may be filled with the longest of ``values`` (a string's repr, for
    %r or !r, adds its quotes and escapes: a few times as many characters at most) and
    padded up to WIDEST_FIELD."""
    if fields and values:
        _check_size(len(text) + fields * (max(_lengths(values)) + WIDEST_FIELD))


def _check_format_size(text: str, values: list[Any]) -> None:
    _check_filled(text, text.count("{") - 2 * text.count("{{"), values)


def _check_translate(text: str, table: Any) -> None:
    size = 0
    for char, times in Counter(text).items():
        try:
            replacement = table[ord(char)]
        except (LookupError, TypeError):
            replacement = char
        size += times * (len(replacement) if isinstance(replacement, str) else 1)
        _check_size(size)


def _check_str_call(text: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Calls on a string that could make one huge one in a single C-level step."""
    if method == "format":
        _check_format(text)
        _check_format_size(text, [*args, *kwargs.values()])
    elif method == "format_map" and args:
        _check_format(text)
        _check_format_size(text, list(args[0].values()) if isinstance(args[0], Mapping) else [])
    elif method in ("center", "ljust", "rjust", "zfill", "expandtabs"):
        _check_width(args[0] if args else kwargs.get("width", kwargs.get("tabsize")))
    elif method == "replace" and len(args) >= 2:
        _check_replace(text, *args[:3])
    elif method == "join" and args:
        _check_join(text, args[0])
    elif method == "translate" and args:
        _check_translate(text, args[0])


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        target = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
        if isinstance(getattr(target, "__self__", None), str):
            method = getattr(target, "__name__", "")
            if method == "join" and args:
                args = (list(args[0]), *args[1:])  # counted first: an iterator would be spent
            _check_str_call(target.__self__, method, args, kwargs)
        return super().call(context, obj, *args, **kwargs)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%":
            if isinstance(left, str):
                _check_printf(left, right)
        elif operator == "**":
            if not (isinstance(left, int | float) and isinstance(right, int | float)) or abs(right) > 64 \
                    or abs(left) > LARGEST_NUMBER:
                raise SecurityError("powers are limited to small numbers")
        elif isinstance(left, str | list | tuple) or isinstance(right, str | list | tuple):
            sequence, count = (left, right) if isinstance(left, str | list | tuple) else (right, left)
            if isinstance(count, int) and len(sequence) * count > LONGEST_REPETITION:
                raise SecurityError(f"repetitions are limited to {LONGEST_REPETITION} items")
        return super().call_binop(context, operator, left, right)


def _environment(*, html: bool, strict: bool) -> ImmutableSandboxedEnvironment:
    env = _Sandbox(
        autoescape=html,
        # Rendering real emails must not fail over a missing optional value (ChainableUndefined also lets
        # `ticket.url` through when `ticket` itself is missing); validation is strict to catch typos.
        undefined=StrictUndefined if strict else ChainableUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(status_label=_status_filter, priority_label=_priority_filter, clock_label=_clock_filter)
    _guard_filters(env)
    return env


def _guard_filters(env: ImmutableSandboxedEnvironment) -> None:
    """The built-in filters that can grow a string in one step check their arguments first."""
    plain = dict(env.filters)

    def format_(value: Any, *args: Any, **kwargs: Any) -> Any:
        _check_printf(str(value), kwargs or args)
        return plain["format"](value, *args, **kwargs)

    def center(value: Any, width: int = 80) -> Any:
        _check_width(width)
        return plain["center"](value, width)

    def indent(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> Any:
        _check_width(width if isinstance(width, int) else len(str(width)))
        return plain["indent"](value, width, *args, **kwargs)

    @pass_eval_context
    def replace(eval_ctx: Any, value: Any, old: Any, new: Any, count: Any = None) -> Any:
        _check_replace(str(value), old, new, -1 if count is None else count)
        return plain["replace"](eval_ctx, value, old, new, count)

    @pass_eval_context
    def join(eval_ctx: Any, value: Any, d: Any = "", attribute: Any = None) -> Any:
        if attribute is not None:
            value = map(make_attrgetter(eval_ctx.environment, attribute), value)
        items = list(value)
        _check_join(str(d), items)
        return plain["join"](eval_ctx, items, d)

    env.filters.update(format=format_, center=center, indent=indent, replace=replace, join=join)


_ENVIRONMENTS = {(h, s): _environment(html=h, strict=s) for h in (False, True) for s in (False, True)}
_ALLOWED_GLOBALS = frozenset(_ENVIRONMENTS[(False, False)].globals)


def _runtime_line(exc: BaseException) -> int | None:
    # Jinja rewrites tracebacks so that the template's own frame carries the template line number.
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _static_check(field: str, tree: nodes.Template) -> None:
    """Refuses what the sandbox would only refuse when that branch happens to run, so admins hear at once."""
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        name: Any = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args \
                and isinstance(node.args[0], nodes.Const):
            name = node.args[0].value
        if isinstance(name, str) and name.startswith("_"):
            raise TemplateInvalid(
                field, f"forbidden attribute {name!r}: names starting with an underscore are not available",
                node.lineno)
    # There is no template loader (nothing to include), and templates must stand alone so previews are exact.
    for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        raise TemplateInvalid(field, "extends, include and import are not supported", node.lineno)
    for node in tree.find_all(nodes.Const):
        if isinstance(node.value, int | float) and not isinstance(node.value, bool) \
                and abs(node.value) > LARGEST_NUMBER:
            raise TemplateInvalid(field, f"numbers above {LARGEST_NUMBER:,} are not allowed", node.lineno)


@lru_cache(maxsize=512)
def _compile(field: str, source: str, strict: bool) -> Template:
    if len(source) > SOURCE_MAX_CHARS:
        raise TemplateInvalid(field, f"is too long ({len(source)} characters, at most {SOURCE_MAX_CHARS})")
    env = _ENVIRONMENTS[(field == "html", strict)]
    try:
        tree = env.parse(source)
        _static_check(field, tree)
        return env.from_string(tree)
    except TemplateSyntaxError as exc:  # also an unknown filter or test, found when compiling
        raise TemplateInvalid(field, f"syntax error: {exc.message}", exc.lineno) from None


class _OverBudget(Exception):
    pass


_TEMPLATE_CODE = "<template>"  # the file name Jinja gives the code compiled from a string


def _within_budget(template: Template, context: Mapping[str, Any]) -> str:
    """Render, stopping once it has used ``RENDER_BUDGET_SECONDS`` of CPU. A trace
    function sees every line the compiled template runs, so no loop escapes it; it makes
    rendering a few times slower, which is why only admins' templates pay for it.

    Only the template's own lines are traced and stopped. Jinja's and Python's code it
    calls does one bounded step each (the huge ones are refused before they run), and
    stopping there could land where nobody can catch it: in a generator the collector is
    finalising, which Python then reports as an unraisable error and carries on.

    The clock is the thread's CPU time, so that a busy machine taking the CPU away does
    not fail a template that is fine; it is read only once the wall clock says the budget
    could be spent (reading it costs ten times as much, on every traced line)."""
    cpu_start = time.thread_time()
    deadline = time.perf_counter() + RENDER_BUDGET_SECONDS

    unwinding = False

    def check(frame: Any, event: str, _arg: Any) -> Any:
        nonlocal deadline, unwinding
        if frame.f_code.co_filename != _TEMPLATE_CODE:
            return None
        # A refusal on its way out (a size check that itself took the rest of the budget on
        # a slow machine) is the answer: the template stops either way, and it says why.
        # Until a line runs again (the template's own code caught it), nothing is checked.
        if event == "exception":
            unwinding = True
        elif event == "line":
            unwinding = False
        if not unwinding and time.perf_counter() > deadline:
            left = RENDER_BUDGET_SECONDS - (time.thread_time() - cpu_start)
            if left <= 0:
                raise _OverBudget
            deadline = time.perf_counter() + left
        return check

    before = sys.gettrace()
    sys.settrace(check)
    try:
        return template.render(context)
    finally:
        sys.settrace(before)


def _render_part(field: str, source: str, context: Mapping[str, Any], *, strict: bool, trusted: bool = False) -> str:
    template = _compile(field, source, strict)
    try:
        rendered = template.render(context) if trusted else _within_budget(template, context)
    except _OverBudget:
        raise TemplateInvalid(field, f"takes too long to render (more than {RENDER_BUDGET_SECONDS * 1000:.0f} ms); "
                                     "simplify its loops") from None
    except SecurityError as exc:
        raise TemplateInvalid(field, f"forbidden attribute or call: {exc}", _runtime_line(exc)) from None
    except UndefinedError as exc:
        raise TemplateInvalid(field, f"unknown variable or attribute: {exc}", _runtime_line(exc)) from None
    except Exception as exc:  # noqa: BLE001 - whatever an admin's template does wrong, report it on that part
        raise TemplateInvalid(field, f"cannot be rendered: {type(exc).__name__}: {exc}",
                              _runtime_line(exc)) from None
    if len(rendered) > LARGEST_PART:
        raise TemplateInvalid(field, f"renders too large ({len(rendered):,} characters, at most {LARGEST_PART:,})")
    return rendered


# --- Context ----------------------------------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise KeyError(f"unknown notification kind {kind!r}")


def _digest_groups(items: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    # Several updates about one ticket read better together; the order stays that of first appearance.
    groups: dict[object, dict[str, Any]] = {}
    for index, item in enumerate(items):
        ticket = item.get("ticket")
        ticket = ticket if isinstance(ticket, Mapping) and ticket else None
        key: object = ("ticket", str(ticket.get("reference") or index)) if ticket else ("other",)
        group = groups.setdefault(key, {"ticket": ticket, "updates": []})
        group["updates"].append(item)
    # Updates without a ticket come last, under "Other updates".
    return sorted(groups.values(), key=lambda g: g["ticket"] is None)


def _prepare(kind: str, locale: str, context: Mapping[str, Any]) -> dict[str, Any]:
    ctx = dict(context)  # a copy: the caller's dict is never changed
    ctx["locale"] = locale
    message = ctx.get("message")
    if kind in ("reply_to_customer", "reply_to_agent") and isinstance(message, Mapping):
        # Templates show message.text in the text part and message.html in the html part; either may be given.
        message = dict(message)
        if not message.get("html") and message.get("text"):
            message["html"] = text_to_html(str(message["text"]))
        if not message.get("text") and message.get("html"):
            message["text"] = html_to_text(str(message["html"]))
        ctx["message"] = message
    if kind == "escalated" and isinstance(parts := ctx.get("system_reason"), Mapping):
        ctx["reason"] = escalation_reason(parts, locale) or ctx.get("reason")
    if kind == "digest":
        given = ctx.get("items")
        # Only an agent's reply to a customer has HTML of its own; the others are their text.
        items = [{"html": "", **item} for item in given if isinstance(item, Mapping)] \
            if isinstance(given, list | tuple) else []
        groups = _digest_groups(items)
        ctx.update(items=items, groups=groups, count=len(items),
                   ticket_count=sum(1 for g in groups if g["ticket"] is not None))
    return ctx


def app_link(app_url: str | None, path: str) -> str:
    """A page of the web app (``RELAYDESK_APP_URL``), or nothing: no link beats a dead one."""
    return f"{app_url.rstrip('/')}{path}" if app_url else ""


def _sample_ticket(number: int, subject: str, status: str, priority: str, requester: str) -> dict[str, Any]:
    reference = f"T-{number:06d}"
    return {"reference": reference, "subject": subject, "status": status, "priority": priority,
            "url": f"https://help.example.com/tickets/{reference}", "requester_name": requester}


CUSTOMER_KINDS = frozenset({"ticket_created", "reply_to_customer", "status_changed"})


def sample_context(kind: str) -> dict[str, Any]:
    """Realistic values for every variable of `kind`, for previews and for `validate`. A fresh dict each call."""
    _check_kind(kind)
    ticket = _sample_ticket(123, "Cannot download the invoice for March", "IN_PROGRESS", "HIGH", "Lan Nguyen")
    ctx: dict[str, Any] = {
        "workspace_name": "Lotus Travel",
        "recipient_name": "Lan Nguyen" if kind in CUSTOMER_KINDS else "Minh Tran",
        "ticket": ticket,
        "unsubscribe_url": "https://help.example.com/settings/notifications",
    }
    if kind == "assigned":
        ctx["actor_name"] = "Hoa Pham"
    elif kind == "reply_to_customer":
        text = ("Hi Lan,\n\nI have re-issued the March invoice. You can download it from the Billing page now.\n\n"
                "Best,\nMinh")
        ctx["message"] = {"author_name": "Minh Tran", "text": text, "html": text_to_html(text)}
    elif kind == "reply_to_agent":
        text = "Thanks, but the download link still shows an error: \"Invoice not found\"."
        ctx["message"] = {"author_name": "Lan Nguyen", "text": text, "html": text_to_html(text)}
    elif kind == "status_changed":
        ctx.update(old_status="IN_PROGRESS", new_status="WAITING_ON_CUSTOMER")
    elif kind.startswith("sla_"):
        percent = {"sla_warning": "75", "sla_critical": "90"}.get(kind, "100")
        ctx.update(clock="first response", due_at="2025-03-14 14:30", percent=percent)
    elif kind == "escalated":
        ctx.update(level=2, reason="The customer reports that payments are failing for all travellers.")
    elif kind == "queue_waiting":
        ctx.update(waited_minutes=25, team_name="Billing")
    elif kind == "daily_summary":
        del ctx["ticket"]
        ctx.update(date="2025-03-14", team_name="Billing",
                   counts={"created": 42, "resolved": 37, "open": 18, "breached": 2, "waiting_in_queue": 3},
                   oldest=[ticket,
                           _sample_ticket(98, "Refund for a cancelled booking", "WAITING_INTERNAL", "MEDIUM",
                                          "Quang Le"),
                           _sample_ticket(104, "Change the name on my ticket", "OPEN", "LOW", "Anna Schmidt")])
    elif kind == "digest_reply_refused":
        del ctx["ticket"]
        ctx.update(subject="Re: 5 new updates on your tickets", app_url="https://help.example.com/tickets")
    elif kind == "mailbox_claim_removed":
        del ctx["ticket"]
        ctx.update(address="support@bigshop.example")
    elif kind == "account_changed":
        del ctx["ticket"]
        ctx.update(change="password", reset_url="https://help.example.com/forgot-password",
                   old_email="minh@old.example.com", new_email="minh@new.example.com")
    elif kind == "digest":
        del ctx["ticket"]
        other = _sample_ticket(124, "Booking confirmation not received", "OPEN", "MEDIUM", "Tuan Vo")
        ctx["items"] = [
            {"kind": "assigned", "title": "Assigned to you", "text": "Hoa Pham assigned this ticket to you.",
             "ticket": ticket, "at": "09:12"},
            {"kind": "reply_to_agent", "title": "New reply from Lan Nguyen",
             "text": "The download link still shows an error.", "ticket": ticket, "at": "09:20"},
            {"kind": "assigned", "title": "Assigned to you", "text": "Automatic routing assigned this ticket to you.",
             "ticket": other, "at": "09:31"},
            {"kind": "sla_warning", "title": "SLA warning", "text": "First response due 2025-03-14 14:30.",
             "ticket": ticket, "at": "09:40"},
            {"kind": "reply_to_agent", "title": "New reply from Tuan Vo",
             "text": "I paid by bank transfer yesterday.", "ticket": other, "at": "09:42"},
        ]
    return ctx


def variables(kind: str) -> tuple[str, ...]:
    """The top-level names a template of `kind` may use, for the template editor's help panel."""
    return tuple(sorted(_prepare(kind, "en", sample_context(kind))))


# --- Templates --------------------------------------------------------------------------------------------


def default_template(kind: str, locale: str) -> TemplateSource:
    _check_kind(kind)
    parts = _defaults.TEMPLATES[normalize_locale(locale)][kind]
    return TemplateSource(subject=parts["subject"], text=parts["text"], html=parts["html"])


def validate(source: TemplateSource, kind: str, locale: str = "en") -> None:
    """Raises TemplateInvalid for the first broken part: bad syntax, unknown variables, forbidden attributes.

    Every part is compiled and rendered with `sample_context(kind)` under StrictUndefined, so a misspelt
    variable fails here rather than rendering as empty in customers' mailboxes.
    """
    _check_kind(kind)
    if not (source.text.strip() or source.html.strip()):
        raise TemplateInvalid("html", "the text and html parts cannot both be empty")
    ctx = _prepare(kind, normalize_locale(locale), sample_context(kind))
    allowed = set(ctx) | _ALLOWED_GLOBALS
    for field in PARTS:
        part = getattr(source, field)
        if not part.strip():
            continue  # render() uses the default subject, and derives an empty text part from the html or back
        _compile(field, part, True)  # syntax, size and forbidden attributes, with the line
        tree = _ENVIRONMENTS[(field == "html", True)].parse(part)
        unknown = sorted(find_undeclared_variables(tree) - allowed)
        if unknown:
            line = next((n.lineno for n in tree.find_all(nodes.Name) if n.name == unknown[0]), None)
            raise TemplateInvalid(
                field, f"unknown variable {unknown[0]!r}; available: {', '.join(sorted(ctx))}", line)
        rendered = _render_part(field, part, ctx, strict=True)
        if field == "subject" and not _one_line(rendered):
            raise TemplateInvalid(field, "renders as an empty subject")


# --- Rendering --------------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _one_line(subject: str) -> str:
    # Whitespace collapsing also removes CR/LF, which keeps header injection out of the Subject line.
    collapsed = " ".join(_CONTROL.sub(" ", subject).split())
    if len(collapsed) > SUBJECT_MAX_CHARS:
        collapsed = collapsed[: SUBJECT_MAX_CHARS - 1].rstrip() + "…"
    return collapsed


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


_LAYOUT = string.Template("""<!DOCTYPE html>
<html lang="$lang">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
</head>
<body style="margin:0;padding:0;background-color:#f4f5f7;">
<div style="max-width:600px;margin:0 auto;padding:24px 16px;font-family:-apple-system,'Segoe UI',Roboto,\
Helvetica,Arial,sans-serif;font-size:15px;line-height:1.5;color:#1f2933;">
$header<div style="background-color:#ffffff;border:1px solid #e4e7eb;border-radius:6px;padding:20px 24px;">
$body
</div>
<div style="padding:16px 4px 0;font-size:12px;line-height:1.5;color:#7b8794;">
<p style="margin:0;">$reason</p>
$preferences</div>
</div>
</body>
</html>
""")


def _safe_url(value: Any) -> str:
    # The link goes into an href outside the sanitised fragment, so only plain web links are accepted.
    url = str(value or "").strip()
    return url if re.match(r"(?i)https?://[^\s\"'<>]+$", url) else ""


def _wrap_html(kind: str, locale: str, subject: str, fragment: str, ctx: Mapping[str, Any]) -> str:
    esc = _html.escape
    workspace = str(ctx.get("workspace_name") or "").strip()
    header = (f'<div style="padding:0 4px 12px;font-size:14px;font-weight:600;color:#52606d;">{esc(workspace)}</div>\n'
              if workspace else "")
    url = _safe_url(ctx.get("unsubscribe_url"))
    preferences = (f'<p style="margin:4px 0 0;"><a href="{esc(url)}" style="color:#7b8794;">'
                   f"{esc(_defaults.PREFERENCES_LABELS[locale])}</a></p>\n" if url else "")
    return _LAYOUT.substitute(lang=locale, title=esc(subject), header=header, body=fragment,
                              reason=esc(_defaults.FOOTER_REASONS[locale][kind]), preferences=preferences)


def _wrap_text(kind: str, locale: str, body: str, ctx: Mapping[str, Any]) -> str:
    footer = ["-- ", _defaults.FOOTER_REASONS[locale][kind]]  # "-- " is the usual signature separator
    url = _safe_url(ctx.get("unsubscribe_url"))
    if url:
        footer.append(f"{_defaults.PREFERENCES_LABELS[locale]}: {url}")
    return f"{body}\n\n" + "\n".join(footer) + "\n"


def render(kind: str, locale: str, context: Mapping[str, Any], override: TemplateSource | None = None
           ) -> RenderedEmail:
    """The email for one recipient. Uses `override` (an admin's saved template) when given.

    Empty override parts fall back: subject to the default subject, text to the html converted to text,
    html to the text converted to html.  A broken override raises TemplateInvalid; callers that must send
    anyway should log it and render again without the override.
    """
    _check_kind(kind)
    locale = normalize_locale(locale)
    default = default_template(kind, locale)
    source = default if override is None else override
    ctx = _prepare(kind, locale, context)

    ours = source is default
    subject = ""
    if source.subject.strip():
        subject = _one_line(_render_part("subject", source.subject, ctx, strict=False, trusted=ours))
    if not subject and not ours:
        subject = _one_line(_render_part("subject", default.subject, ctx, strict=False, trusted=True))

    # Admins can write any markup, and values are only escaped, so the fragment is always sanitised.
    fragment = text = ""
    if source.html.strip():
        fragment = sanitize_html(_render_part("html", source.html, ctx, strict=False, trusted=ours)).strip()
    if source.text.strip():
        text = _tidy_text(_render_part("text", source.text, ctx, strict=False, trusted=ours))
    if not text:
        text = html_to_text(fragment)
    if not fragment:
        fragment = text_to_html(text)

    return RenderedEmail(subject=subject, text=_wrap_text(kind, locale, text, ctx),
                         html=_wrap_html(kind, locale, subject, fragment, ctx))
