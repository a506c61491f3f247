"""What a PostgreSQL database holds on adk_lite's tables that adk_lite does not make
(``check``'s schema problems there): triggers, rules, row security and policies, and
constraints or unique indexes beyond the models' keys."""

from __future__ import annotations

from typing import Any

import peewee as pw

from . import schema


def schema_problems(conn: Any, models: Any) -> list[str]:
    """What is on adk_lite's tables (those of the models, :mod:`adk_lite.models`)
    that adk_lite does not make: it makes no trigger, no rule and no row security on
    PostgreSQL, so every trigger (other than the foreign keys' own), every rule, every
    policy, and row security turned on (a policy hides rows from a delete, so an erase
    would leave them) is one line. Tables, columns and indexes are checked when the
    database is opened; other tables in the schema are other programs' and are not judged."""
    names = [m._meta.table_name for m in models.all]
    rows = conn.execute(
        "SELECT 'trigger', t.tgname, c.relname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE NOT t.tgisinternal AND n.nspname = current_schema() AND c.relname = ANY(%s) "
        "UNION ALL SELECT 'rule', r.rulename, r.tablename, r.definition FROM pg_rules r "
        "WHERE r.schemaname = current_schema() AND r.tablename = ANY(%s) "
        "UNION ALL SELECT 'policy', p.policyname, p.tablename, p.cmd || ' USING ' || coalesce(p.qual, '') "
        "FROM pg_policies p WHERE p.schemaname = current_schema() AND p.tablename = ANY(%s) "
        "UNION ALL SELECT 'row security', '', c.relname, CASE WHEN c.relforcerowsecurity THEN 'forced' "
        "ELSE 'enabled' END FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relname = ANY(%s) "
        "AND (c.relrowsecurity OR c.relforcerowsecurity) "
        "ORDER BY 3, 1, 2",
        (names, names, names, names)).fetchall()
    problems = [f"{kind}{' ' + name if name else ''} on {table} is not adk_lite's ({' '.join(sql.split())[:90]})"
                for kind, name, table, sql in rows]
    return problems + _key_problems(conn, models, names)

def _key_problems(conn: Any, models: Any, names: list) -> list[str]:
    """The constraints (check, unique, exclusion, foreign key) and unique indexes on
    adk_lite's tables that its models do not make: each can refuse or change what a
    write of adk_lite does (an extra unique index fails appends of one event id in two
    sessions). A unique index on the columns of one of the models' keys is allowed."""
    ours = {(m._meta.table_name, "".join(c.sql.split())) for m in models.all
            for c in (m._meta.constraints or ()) if isinstance(c, pw.SQL)}
    keys = schema._model_keys()
    rows = conn.execute(
        "SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k "
        "JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relname = ANY(%s) AND k.contype <> 'p' ORDER BY 1, 2",
        (names,)).fetchall()
    problems = [f"constraint {name} on {table} is not adk_lite's ({' '.join(sql.split())[:90]})"
                for table, name, sql in rows if (table, "".join(sql.split())) not in ours]
    rows = conn.execute(
        "SELECT c.relname, i.relname, pg_get_indexdef(i.oid), x.indpred IS NOT NULL OR x.indexprs IS NOT NULL, "
        "ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum = ANY(x.indkey)) "
        "FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
        "AND c.relname = ANY(%s) AND x.indisunique AND NOT x.indisprimary "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid AND k.conrelid = x.indrelid "
        "AND k.contype IN ('u', 'x')) ORDER BY 1, 2",
        (names,)).fetchall()
    problems += [f"unique index {name} on {table} is not adk_lite's ({' '.join(sql.split())[:90]})"
                 for table, name, sql, partial, columns in rows
                 if partial or frozenset(columns) not in keys.get(table, ())]
    return problems
