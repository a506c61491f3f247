"""The results of one run as a table, the ratios that matter, and the performance targets."""

from __future__ import annotations

from typing import Any, Optional

from .drivers import LABELS, POSTGRES_LABELS, SERVICES

SHORT = {"floor": "floor", "adk_lite": "lite sync", "adk_lite_async": "lite async", "adk_lite_adk": "lite adapter",
         "adk_inmemory": "ADK memory", "adk_sqlite": "ADK Sqlite", "adk_database": "ADK Database"}


def _us(x: float) -> str:
    if x >= 10_000:
        return f"{x / 1000:.0f} ms"
    if x >= 1000:
        return f"{x / 1000:.1f} ms"
    return f"{x:.0f} µs"


def _rate(x: float) -> str:
    return f"{x / 1000:.0f}k/s" if x >= 10_000 else f"{x:.0f}/s"


def rows(results: dict[str, Any], sizes: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """The table's rows: ``(figure key, label, how to show a figure)``."""
    pct = lambda f: f"{_us(f['p50_us'])} / {_us(f['p99_us'])}"  # noqa: E731
    out = [("create_session", "create_session p50 / p99", pct),
           ("append_event", "append_event p50 / p99", pct),
           ("append_event", "append_event events/s", lambda f: _rate(f["per_s"])),
           ("append_events_100", "append_events (100) p50 / p99", pct),
           ("append_events_100", "append_events (100) events/s at p50", lambda f: _rate(f["p50_per_s"])),
           ("get_session_full_100", "get_session all of 100 ev", pct),
           ("get_session_full_1000", "get_session all of 1000 ev", pct)]
    out += [(f"get_session_recent20_{n}", f"get_session last 20 of {n:,} ev", pct) for n in sizes["recent"]]
    out += [("list_sessions_user", "list_sessions one user (all)", lambda f: f"{pct(f)} ({f['sessions']})"),
            ("list_sessions_app", "list_sessions app (all)", lambda f: f"{pct(f)} ({f['sessions']})"),
            ("list_sessions_page_first", "list_sessions page 1 (100)", pct),
            ("list_sessions_page_deep", f"list_sessions page at {sizes['deep_at']:,}", pct),
            ("update_keys", "update_keys p50 / p99", pct),
            ("get_stats", f"get_stats ({sizes['big_events']:,} ev)", pct),
            ("file_bytes_per_event", "file bytes/event (x JSON)",
             lambda f: f"{f['bytes_per_event']:.0f} B ({f['ratio']:.2f}x)")]
    return out


def table(results: dict[str, Any], sizes: dict[str, Any], services: tuple[str, ...] = SERVICES) -> str:
    """A markdown table: one row per figure, one column per service of ``services``;
    rows no service has are left out."""
    head = "| figure | " + " | ".join(SHORT[s] for s in services) + " |"
    lines = [head, "|---" * (len(services) + 1) + "|"]
    for key, label, show in rows(results, sizes):
        if not any(key in results.get(s, {}).get("figures", {}) for s in services) and any(
                "figures" in results.get(s, {}) for s in services):
            continue
        cells = []
        for s in services:
            r = results.get(s, {})
            fig = r.get("figures", {}).get(key)
            cells.append(show(fig) if fig else ("error" if "error" in r else "n/a"))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    cells = [f"{results[s]['peak_rss_mib']:.0f} MiB" if "peak_rss_mib" in results.get(s, {}) else "n/a"
             for s in services]
    lines.append("| peak RSS (process) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _p50(results: dict[str, Any], service: str, key: str) -> Optional[float]:
    fig = results.get(service, {}).get("figures", {}).get(key)
    return fig["p50_us"] if fig else None


POSTGRES_PAIRS = [("adk_database", "adk_lite_adk"), ("adk_database", "adk_lite")]
"""The p50 ratios of a run on PostgreSQL: ADK's DatabaseSessionService over each adk_lite face."""


def ratios(results: dict[str, Any], sizes: dict[str, Any],
           pairs: Optional[list[tuple[str, str]]] = None) -> dict[str, dict[str, Optional[float]]]:
    """p50 ratios ``a / b`` of each pair of services: by default each ADK service over
    each adk_lite face, and adk_lite over the floor.

    Returns:
        ``{figure: {"ADK Sqlite / lite adapter": x, ...}}``; None where either side is missing.
    """
    keys = ["create_session", "append_event", "get_session_full_100", "get_session_full_1000",
            f"get_session_recent20_{sizes['recent'][-1]}", "list_sessions_user"]
    if pairs is None:
        pairs = [(a, b) for b in ("adk_lite_adk", "adk_lite_async")
                 for a in ("adk_inmemory", "adk_sqlite", "adk_database")]
        pairs += [("adk_lite", "floor"), ("adk_lite_async", "floor"), ("adk_lite_adk", "floor")]
    out = {}
    for key in keys + ["append_events_100"]:
        row = {}
        for a, b in pairs:
            x, y = _p50(results, a, key), _p50(results, b, key)
            row[f"{SHORT[a]} / {SHORT[b]}"] = round(x / y, 2) if x and y else None
        out[key] = row
    return out


def ratio_table(r: dict[str, dict[str, Optional[float]]]) -> str:
    """The ratios as a markdown table (rows: figures; columns: pairs)."""
    pairs = list(next(iter(r.values())))
    pairs = [p for p in pairs if any(row[p] is not None for row in r.values())]
    lines = ["| p50 ratio | " + " | ".join(pairs) + " |", "|---" * (len(pairs) + 1) + "|"]
    for key, row in r.items():
        lines.append(f"| {key} | " + " | ".join("-" if row[p] is None else f"{row[p]:g}x" for p in pairs) + " |")
    return "\n".join(lines)


def _goal(name: str, value: Optional[float], ok: Optional[bool], shown: str, missing: str,
          quick: bool) -> dict[str, Any]:
    """One target's row: ``met`` / ``missed`` / ``n/a: why`` (``not judged`` for a smoke run)."""
    verdict = ("met" if ok else "missed") if value is not None else f"n/a: {missing}"
    if quick and value is not None:
        verdict = "not judged (smoke run)"
    return {"target": name, "value": value, "shown": shown if value is not None else "-", "verdict": verdict}


def _div(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return round(a / b, 2) if a and b else None


def _why(results: dict[str, Any], *services: str) -> str:
    """Why a figure of ``services`` is missing: each one's skip reason or error."""
    return "; ".join(f"{SHORT[s]}: {results.get(s, {}).get('skipped') or results.get(s, {}).get('error', 'not run')}"
                     for s in services if "figures" not in results.get(s, {})) or "figure missing"


def targets(results: dict[str, Any], conc: list[dict[str, Any]], sizes: dict[str, Any],
            paired: dict[str, Any], adapter: Optional[dict[str, Any]] = None,
            quick: bool = False) -> list[dict[str, Any]]:
    """Each target, named with what it compares, with the measured value and
    ``met`` / ``missed`` / ``n/a: why`` (``not judged`` for a ``--quick`` run).

    Targets comparing two services are judged on the interleaved one-process runs
    (``paired``, ``adapter``) when there are.
    """
    out = []
    adapter = adapter or {}

    def check(name: str, value: Optional[float], ok: Optional[bool], shown: str, missing: str = "") -> None:
        out.append(_goal(name, value, ok, shown, missing, quick))

    div = _div

    def why(*services: str) -> str:
        return _why(results, *services)

    paired_one = paired.get("append_event", {})
    x = paired_one.get("ratio_p50") or div(_p50(results, "adk_lite", "append_event"), _p50(results, "floor", "append_event"))
    check("sync append_event p50 <= 2x the stdlib-sqlite3 floor's (same statements, interleaved)", x, x is not None and x <= 2,
          f"{x}x" + (f" (paired: {paired_one['adk_lite']['p50_us']:.0f} vs {paired_one['floor']['p50_us']:.0f} µs)"
                     if paired_one else ""), why("adk_lite", "floor"))
    for other, need in (("adk_sqlite", 15), ("adk_database", 25)):
        x = div(_p50(results, other, "append_event"), _p50(results, "adk_lite_adk", "append_event"))
        check(f"ADK adapter append_event p50 >= {need}x faster than {LABELS[other]}'s", x,
              x is not None and x >= need,
              f"{x}x", why("adk_lite_adk", other))
    big = sizes["recent"][-1]
    x = div(_p50(results, "adk_lite", f"get_session_recent20_{big}"), _p50(results, "adk_lite", "get_session_recent20_100"))
    check(f"sync get_session(num_recent_events=20) p50 on a {big:,}-event session <= 2x on a 100-event one", x,
          x is not None and x <= 2, f"{x}x", why("adk_lite"))
    recent = adapter.get("reads", {}).get("recent20")
    x = recent["ratio_p50"] if recent else None
    check(f"ADK adapter get_session(num_recent_events=20) p50 on a {big:,}-event session <= 2x on a 100-event one "
          "(interleaved)", x, x is not None and x <= 2,
          f"{x}x ({recent['big']['p50_us']:.0f} vs {recent['small']['p50_us']:.0f} µs)" if recent else "",
          adapter.get("reads", {}).get("error", "adapter not run"))
    full = adapter.get("reads", {}).get("full_1000")
    x = full["ratio_p50"] if full else div(_p50(results, "adk_lite_adk", "get_session_full_1000"),
                                           _p50(results, "adk_inmemory", "get_session_full_1000"))
    check("ADK adapter get_session of all 1,000 events p50 <= 0.7x ADK InMemorySessionService's on the same events "
          "(interleaved)", x, x is not None and x <= 0.7,
          f"{x}x ({full['adapter']['p50_us'] / 1000:.1f} vs {full['inmemory']['p50_us'] / 1000:.1f} ms)" if full
          else f"{x}x (separate processes)", why("adk_lite_adk", "adk_inmemory"))
    call = adapter.get("call")
    if call and "adapter" in call:
        x = call["adapter"]["p50_us"]
        check("ADK adapter append_event p50 <= sync append_event p50 + one bare executor hop p50 + the event's "
              "pydantic serialization p50 (interleaved)", x, x <= call["budget_p50_us"],
              f"{x:.0f} vs {call['sync']['p50_us']:.0f} + {call['hop']['p50_us']:.0f} + "
              f"{call['serialize']['p50_us']:.0f} = {call['budget_p50_us']:.0f} µs")
    else:
        check("ADK adapter append_event p50 <= sync append_event p50 + one bare executor hop p50 + the event's "
              "pydantic serialization p50 (interleaved)", None, None, "",
              (call or {}).get("error", "adapter not run"))
    pb = paired.get("append_events_100")
    fig = pb["adk_lite"] if pb else results.get("adk_lite", {}).get("figures", {}).get("append_events_100")
    x = fig["p50_per_s"] if fig else None
    check("sync append_events of 100 >= 50k events/s (at the p50)", x, x is not None and x >= 50_000,
          f"{x:,.0f} events/s" + (f" (paired; the floor: {pb['floor']['p50_per_s']:,.0f} events/s)" if pb else "")
          if x else "", why("adk_lite"))
    by_n = {c["processes"]: c for c in conc}
    if 1 in by_n and 4 in by_n:
        four, one = by_n[4], by_n[1]
        x = round(four["events_per_s"] / one["events_per_s"], 2)
        check("4 processes appending to one file: zero 'database is locked', total events/s >= 1 process's", x,
              four["locked"] == 0 and not four["errors"] and x >= 1,
              f"{four['locked']} locked, {sum(four['errors'].values())} errors, {x}x of 1 process")
    else:
        check("4 processes appending to one file: zero 'database is locked', total events/s >= 1 process's", None,
              None, "", "concurrency not run")
    fig = results.get("adk_lite", {}).get("figures", {}).get("file_bytes_per_event")
    x = fig["ratio"] if fig else None
    check("file bytes per event after VACUUM <= 1.3x the event's compact JSON", x, x is not None and x <= 1.3, f"{x}x",
          why("adk_lite"))
    return out


def postgres_targets(results: dict[str, Any], sizes: dict[str, Any], paired: Optional[dict[str, Any]] = None,
                     quick: bool = False) -> list[dict[str, Any]]:
    """The targets of a run on PostgreSQL (``python -m bench --backend postgres``), each
    named with what it compares, with the measured value and its verdict (as :func:`targets`);
    the append target is judged on the interleaved run (``paired``) when there is one."""
    out = []
    if paired and "ratio_p50" in paired:
        adapter, adk, how = paired["adapter"]["p50_us"], paired["adk"]["p50_us"], "interleaved"
    else:
        adapter, adk = _p50(results, "adk_lite_adk", "append_event"), _p50(results, "adk_database", "append_event")
        how = "separate processes"
    x = _div(adk, adapter)
    out.append(_goal(f"ADK adapter append_event p50 >= 5x faster than {POSTGRES_LABELS['adk_database']}'s on the "
                     "same server (interleaved)", x, x is not None and x >= 5,
                     f"{x}x ({_us(adk or 0)} vs {_us(adapter or 0)}, {how})",
                     (paired or {}).get("error") or _why(results, "adk_lite_adk", "adk_database"), quick))
    big = sizes["recent"][-1]
    for service in ("adk_lite", "adk_lite_adk"):
        pair = results.get(service, {}).get("figures", {}).get("get_session_recent20_pair")
        x = pair["ratio_p50"] if pair else None
        out.append(_goal(f"{LABELS[service]} get_session(num_recent_events=20) p50 on a {big:,}-event session <= 2x "
                         "on a 100-event one (interleaved)", x, x is not None and x <= 2,
                         f"{x}x ({_us(pair['big']['p50_us'])} vs {_us(pair['small']['p50_us'])})" if pair else "",
                         _why(results, service), quick))
    first, deep = (_p50(results, "adk_lite", key) for key in ("list_sessions_page_first", "list_sessions_page_deep"))
    x = round(max(first, deep) / 1000, 2) if first and deep else None
    out.append(_goal(f"sync list_sessions page of 100 from {sizes['big_sessions']:,} sessions p50 <= 10 ms (the first "
                     f"page and the page at {sizes['deep_at']:,}, the slower of the two)", x, x is not None and x <= 10,
                     f"{x} ms (first {_us(first or 0)}, at {sizes['deep_at']:,} {_us(deep or 0)})",
                     _why(results, "adk_lite"), quick))
    return out


def concurrency_table(conc: list[dict[str, Any]], named: bool = False) -> str:
    """The concurrency runs as a markdown table; ``named``: with a column for the service."""
    lines = [("| service " if named else "") + "| processes | events | seconds | events/s total | errors | "
             "database is locked |", "|---" * (6 + named) + "|"]
    for c in conc:
        if "error" in c:
            lines.append((f"| {SHORT[c['service']]} " if named else "") + f"| failed: {c['error']} | | | | | |")
            continue
        errs = ", ".join(f"{k}: {v}" for k, v in c["errors"].items()) or "0"
        lines.append((f"| {SHORT[c['service']]} " if named else "") +
                     f"| {c['processes']} | {c['events']:,} | {c['seconds']} | {c['events_per_s']:,.0f} | {errs} | "
                     f"{c['locked']} |")
    return "\n".join(lines)


SMOKE = ("SMOKE RUN (--quick): small sizes, to check that the benchmark runs. These figures judge nothing; "
         "run `python -m bench` without --quick for figures to compare.")


def machine_line(machine: dict[str, Any]) -> str:
    """What the figures were measured on, in one line (with the PostgreSQL server and
    drivers when ``machine`` names them)."""
    server = (f"; PostgreSQL {machine['postgres']} ({machine['postgres_at']}), psycopg {machine['psycopg']}, "
              f"asyncpg {machine['asyncpg']}" if "postgres" in machine else "")
    return (f"Measured on: {machine['cpus']} CPUs ({machine['cpu']}, load {machine['load_avg_1m']} at start), "
            f"{machine['os']}; Python {machine['python']}, SQLite {machine['sqlite']}, Peewee {machine['peewee']}, "
            f"google-adk {machine['google-adk']}, SQLAlchemy {machine['sqlalchemy']}, orjson {machine['orjson']}"
            + server)


def adapter_table(adapter: dict[str, Any]) -> list[str]:
    """The ADK adapter's side-by-side runs (reads, the single call) as markdown lines."""
    lines = []
    reads, call = adapter.get("reads", {}), adapter.get("call", {})
    if "full_1000" in reads:
        full, recent = reads["full_1000"], reads["recent20"]
        lines += ["ADK adapter reads, interleaved call by call in one process (p50 / p99):", "",
                  "| call | ADK adapter | ADK InMemorySessionService | ratio of p50s |", "|---|---|---|---|",
                  f"| get_session, all of 1,000 events | {_us(full['adapter']['p50_us'])} / "
                  f"{_us(full['adapter']['p99_us'])} | {_us(full['inmemory']['p50_us'])} / "
                  f"{_us(full['inmemory']['p99_us'])} | {full['ratio_p50']}x |",
                  f"| get_session last 20 of 100 / of {recent['events_big']:,} events | "
                  f"{_us(recent['small']['p50_us'])} / {_us(recent['big']['p50_us'])} | - | {recent['ratio_p50']}x |", ""]
        cache = reads["cache"]
        lines += [f"Event cache after these reads: {cache['entries']:,} events kept (bound {cache['size']:,}), "
                  f"{cache['hits']:,} served from it, {cache['misses']:,} validated." if cache else
                  "This adapter has no event cache.", ""]
    if "adapter" in call:
        lines += ["ADK adapter append_event beside its parts, interleaved call by call in one process:", "",
                  "| part | p50 | p99 |", "|---|---|---|"]
        for key, label in (("sync", "sync append_event (adk_lite)"), ("hop", "one bare executor hop (a no-op call)"),
                           ("serialize", "pydantic serialization of the event"),
                           ("adapter_no_hop", "the adapter's append steps on the caller's thread (no hop)"),
                           ("adapter", "ADK adapter append_event")):
            lines.append(f"| {label} | {_us(call[key]['p50_us'])} | {_us(call[key]['p99_us'])} |")
        lines += [f"| adapter p50 minus (sync + hop + serialization) | {call['over_budget_us']:+.0f} µs | |", ""]
    return lines


def render(machine: dict[str, Any], results: dict[str, Any], paired: dict[str, Any], conc: list[dict[str, Any]],
           ratio: dict, goals: list[dict[str, Any]], sizes: dict[str, Any], adapter: Optional[dict[str, Any]] = None,
           quick: bool = False, services: tuple[str, ...] = SERVICES, labels: Optional[dict[str, str]] = None,
           conc_title: str = "Concurrent appends to one file (adk_lite sync, one service per process):") -> str:
    """The whole stdout report: of the SQLite run by default, or of ``services`` named by ``labels``."""
    labels = labels or LABELS
    parts = ([SMOKE, ""] if quick else []) + [machine_line(machine), "",
                                              "Services: " + "; ".join(f"{SHORT[s]} = {labels[s]}" for s in services), ""]
    skipped = [f"{SHORT[s]}: {results[s].get('skipped') or results[s].get('error')}" for s in services
               if s in results and "figures" not in results[s]]
    if skipped:
        parts += ["Not measured: " + "; ".join(skipped), ""]
    parts += [table(results, sizes, services), "", ratio_table(ratio), ""]
    if paired:
        parts += ["Interleaved call by call with the floor in one process (the steadiest adk_lite / floor ratio):", "",
                  "| call | calls | adk_lite sync p50 / p99 | floor p50 / p99 | p50 ratio | events/s at p50: adk_lite, floor |",
                  "|---|---|---|---|---|---|"]
        for name, p in paired.items():
            a, f = p["adk_lite"], p["floor"]
            parts.append(f"| {name} | {a['n']:,} | {_us(a['p50_us'])} / {_us(a['p99_us'])} | {_us(f['p50_us'])} / "
                         f"{_us(f['p99_us'])} | {p['ratio_p50']}x | {_rate(a['p50_per_s'])}, {_rate(f['p50_per_s'])} |")
        parts.append("")
    if conc:
        parts += [conc_title, "", concurrency_table(conc, named=services != SERVICES), ""]
    parts += adapter_table(adapter or {})
    parts += ["| target (what it compares) | measured | verdict |", "|---|---|---|"]
    parts += [f"| {g['target']} | {g['shown']} | {g['verdict']} |" for g in goals]
    if quick:
        parts += ["", SMOKE]
    parts += ["", machine_line(machine)]
    return "\n".join(parts)
