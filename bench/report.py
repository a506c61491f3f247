"""The results of one run as a table, the ratios that matter, and the targets of issue 5."""

from __future__ import annotations

from typing import Any, Optional

from .drivers import LABELS, SERVICES

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


def table(results: dict[str, Any], sizes: dict[str, Any]) -> str:
    """A markdown table: one row per figure, one column per service."""
    head = "| figure | " + " | ".join(SHORT[s] for s in SERVICES) + " |"
    lines = [head, "|---" * (len(SERVICES) + 1) + "|"]
    for key, label, show in rows(results, sizes):
        cells = []
        for s in SERVICES:
            r = results.get(s, {})
            fig = r.get("figures", {}).get(key)
            cells.append(show(fig) if fig else ("error" if "error" in r else "n/a"))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    cells = [f"{results[s]['peak_rss_mib']:.0f} MiB" if "peak_rss_mib" in results.get(s, {}) else "n/a"
             for s in SERVICES]
    lines.append("| peak RSS (process) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _p50(results: dict[str, Any], service: str, key: str) -> Optional[float]:
    fig = results.get(service, {}).get("figures", {}).get(key)
    return fig["p50_us"] if fig else None


def ratios(results: dict[str, Any], sizes: dict[str, Any]) -> dict[str, dict[str, Optional[float]]]:
    """p50 ratios: each ADK service over each adk_lite face, and adk_lite over the floor.

    Returns:
        ``{figure: {"ADK Sqlite / lite adapter": x, ...}}``; None where either side is missing.
    """
    keys = ["create_session", "append_event", "get_session_full_100", "get_session_full_1000",
            f"get_session_recent20_{sizes['recent'][-1]}", "list_sessions_user"]
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


def targets(results: dict[str, Any], conc: list[dict[str, Any]], sizes: dict[str, Any],
            paired: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 5 with the measured value and ``met`` / ``missed`` / ``n/a (...)``.

    The floor target is judged on the interleaved (paired) run when there is one.
    """
    out = []

    def check(name: str, value: Optional[float], ok: Optional[bool], shown: str, missing: str = "") -> None:
        verdict = ("met" if ok else "missed") if value is not None else f"n/a: {missing}"
        out.append({"target": name, "value": value, "shown": shown if value is not None else "-", "verdict": verdict})

    def div(a: Optional[float], b: Optional[float]) -> Optional[float]:
        return round(a / b, 2) if a and b else None

    def why(*services: str) -> str:
        return "; ".join(f"{SHORT[s]}: {results.get(s, {}).get('skipped') or results.get(s, {}).get('error', 'not run')}"
                         for s in services if "figures" not in results.get(s, {})) or "figure missing"

    paired_one = paired.get("append_event", {})
    x = paired_one.get("ratio_p50") or div(_p50(results, "adk_lite", "append_event"), _p50(results, "floor", "append_event"))
    check("sync append_event p50 <= 2x the stdlib floor", x, x is not None and x <= 2,
          f"{x}x" + (f" (paired: {paired_one['adk_lite']['p50_us']:.0f} vs {paired_one['floor']['p50_us']:.0f} µs)"
                     if paired_one else ""), why("adk_lite", "floor"))
    for other, need in (("adk_sqlite", 15), ("adk_database", 25)):
        x = div(_p50(results, other, "append_event"), _p50(results, "adk_lite_adk", "append_event"))
        check(f"adapter append_event p50 >= {need}x faster than {SHORT[other]}", x, x is not None and x >= need,
              f"{x}x", why("adk_lite_adk", other))
    big = sizes["recent"][-1]
    x = div(_p50(results, "adk_lite", f"get_session_recent20_{big}"), _p50(results, "adk_lite", "get_session_recent20_100"))
    check(f"get_session last 20 at {big:,} events <= 2x the same at 100", x, x is not None and x <= 2, f"{x}x",
          why("adk_lite"))
    a, m = _p50(results, "adk_lite_adk", "get_session_full_1000"), _p50(results, "adk_inmemory", "get_session_full_1000")
    x = div(a, m)
    check("adapter get_session of 1000 events no slower than ADK InMemory", x, x is not None and x <= 1,
          f"{x}x of InMemory", why("adk_lite_adk", "adk_inmemory"))
    pb = paired.get("append_events_100")
    fig = pb["adk_lite"] if pb else results.get("adk_lite", {}).get("figures", {}).get("append_events_100")
    x = fig["p50_per_s"] if fig else None
    check("append_events batch >= 50k events/s (at the p50)", x, x is not None and x >= 50_000,
          f"{x:,.0f} events/s" + (f" (paired; the floor: {pb['floor']['p50_per_s']:,.0f} events/s)" if pb else "")
          if x else "", why("adk_lite"))
    by_n = {c["processes"]: c for c in conc}
    if 1 in by_n and 4 in by_n:
        four, one = by_n[4], by_n[1]
        x = round(four["events_per_s"] / one["events_per_s"], 2)
        check("4 processes: zero 'database is locked', total >= 1 process", x,
              four["locked"] == 0 and not four["errors"] and x >= 1,
              f"{four['locked']} locked, {sum(four['errors'].values())} errors, {x}x of 1 process")
    else:
        check("4 processes: zero 'database is locked', total >= 1 process", None, None, "", "concurrency not run")
    fig = results.get("adk_lite", {}).get("figures", {}).get("file_bytes_per_event")
    x = fig["ratio"] if fig else None
    check("file bytes per event after vacuum <= 1.3x the compact JSON", x, x is not None and x <= 1.3, f"{x}x",
          why("adk_lite"))
    return out


def concurrency_table(conc: list[dict[str, Any]]) -> str:
    """The concurrency runs as a markdown table."""
    lines = ["| processes | events | seconds | events/s total | errors | database is locked |", "|---|---|---|---|---|---|"]
    for c in conc:
        errs = ", ".join(f"{k}: {v}" for k, v in c["errors"].items()) or "0"
        lines.append(f"| {c['processes']} | {c['events']:,} | {c['seconds']} | {c['events_per_s']:,.0f} | {errs} | "
                     f"{c['locked']} |")
    return "\n".join(lines)


def render(machine: dict[str, Any], results: dict[str, Any], paired: dict[str, Any], conc: list[dict[str, Any]],
           ratio: dict, goals: list[dict[str, Any]], sizes: dict[str, Any]) -> str:
    """The whole stdout report."""
    parts = ["Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()),
             "", "Services: " + "; ".join(f"{SHORT[s]} = {LABELS[s]}" for s in SERVICES), ""]
    skipped = [f"{SHORT[s]}: {results[s].get('skipped') or results[s].get('error')}" for s in SERVICES
               if s in results and "figures" not in results[s]]
    if skipped:
        parts += ["Not measured: " + "; ".join(skipped), ""]
    parts += [table(results, sizes), "", ratio_table(ratio), ""]
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
        parts += ["Concurrent appends to one file (adk_lite sync, one service per process):", "",
                  concurrency_table(conc), ""]
    parts += ["| target (issue 5) | measured | verdict |", "|---|---|---|"]
    parts += [f"| {g['target']} | {g['shown']} | {g['verdict']} |" for g in goals]
    return "\n".join(parts)
