"""The store's statements: compiled once per store from the Peewee models
(``query.sql()``, with :mod:`adk_lite.compiled`'s named placeholders checked against
the order they are executed with), and the ``app_name``/``user_id`` filter of the
hand-written ones.

Peewee's query builder costs tens of microseconds per statement, more than
SQLite's own work, so nothing here runs on the hot path: :func:`compile_all`
runs once, when a :class:`~adk_lite.store.Store` is made.
"""

from __future__ import annotations

from typing import Optional

import peewee as pw

from . import usage
from .backend import Backend
from .compiled import SENTINEL as _SENTINEL, compile_query as _compile, literal as _literal, param as _p
from .scopes import APP, SESSION, USER


def app_user_filter(app: Optional[str], user: Optional[str], first: str = "",
                    params: Optional[list] = None, mark: str = "?") -> tuple[str, list]:
    """A ``WHERE`` clause on ``app_name`` / ``user_id`` (None: not filtered),
    after an optional ``first`` condition with its ``params``; ``mark`` is the
    dialect's parameter placeholder (the Peewee database's ``param``).

    Returns:
        ``(" WHERE ..." or "", params)`` for a statement on any adk_lite table.
    """
    clauses, params = ([first] if first else []), list(params or [])
    for column, value in (("app_name", app), ("user_id", user)):
        if value is not None:
            clauses.append(f"{column} = {mark}")
            params.append(value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def compile_all(db: Backend) -> dict[str, str]:
    """Every statement of the store, compiled once from ``db``'s models on its Peewee
    database: ``{name: SQL}``, parameters in the order each ``_compile`` names.

    Raises:
        RuntimeError: a statement takes its parameters in another order (a bug).
    """
    m = db.models
    S, E, T, U = m.Session, m.Event, m.State, m.Usage
    key = ("app", "user", "session")
    usage_names = ("event_id", "invocation_id", "model", "timestamp", "day", *usage.SUMS)

    def where_key(model):
        return (model.app_name == _p("app")) & (model.user_id == _p("user")) & (model.session_id == _p("session"))

    ev_cols = (E.event_id, E.invocation_id, E.author, E.branch, E.timestamp, E.body)
    ev_names = ("event_id", "invocation_id", "author", "branch", "timestamp", "body")
    st_cols = (T.app_name, T.user_id, T.session_id, T.scope, T.state_key)

    def scope_is(scope, app, user, session):
        return ((T.app_name == app) & (T.user_id == user) & (T.session_id == session)
                & (T.scope == _literal(scope)))

    row_query = S.select(S.created_at, S.updated_at, S.revision, S.incarnation).where(where_key(S))
    sql = {
        "session_row": _compile(row_query, *key),
        # the row append reads and bumps: locked where the database has row locks, so
        # two appends to one session serialize (SQLite's write lock already does)
        "session_row_lock": _compile(row_query.for_update() if db.peewee.for_update else row_query, *key),
        "session_insert": _compile(
            S.insert_many([tuple(_p(n) for n in key + ("created_at", "updated_at", "revision", "incarnation",
                                                         "initial_state", "forked_from"))],
                          fields=[S.app_name, S.user_id, S.session_id, S.created_at, S.updated_at, S.revision,
                                  S.incarnation, S.initial_state, S.forked_from]).on_conflict_ignore().returning(),
            *key, "created_at", "updated_at", "revision", "incarnation", "initial_state", "forked_from"),
        "session_lineage": _compile(S.select(S.initial_state, S.forked_from).where(where_key(S)), *key),
        "session_forks": _compile(
            S.select(S.session_id, S.forked_from)
            .where((S.app_name == _p("app")) & (S.user_id == _p("user")) & S.forked_from.is_null(False))
            .order_by(S.updated_at.desc(), S.session_id).limit(_p("limit")), "app", "user", "limit"),
        # the row fork reads first: shared-locked where the database has row locks, so no
        # append (which locks it FOR UPDATE) commits between fork's reads of events and state
        "session_lineage_lock": _compile(
            S.select(S.initial_state, S.forked_from).where(where_key(S)).for_update("FOR SHARE")
            if db.peewee.for_update else S.select(S.initial_state, S.forked_from).where(where_key(S)), *key),
        "session_touch": _compile(
            S.update({S.revision: S.revision + pw.SQL("1"), S.updated_at: _p("updated_at")}).where(where_key(S)),
            "updated_at", *key),
        "session_delete": _compile(S.delete().where(where_key(S)), *key),
        "events_existing": _compile(
            E.select(*ev_cols).where(where_key(E) & E.event_id.in_(
                pw.SQL(db.json_array_values(), [_SENTINEL + "ids"]))), *key, "ids"),
        "event_existing": _compile(E.select(*ev_cols).where(where_key(E) & (E.event_id == _p("id"))),
                                   *key, "id"),
        "event_insert": _compile(
            E.insert_many([tuple(_p(n) for n in key + ev_names)],
                          fields=[E.app_name, E.user_id, E.session_id, *ev_cols]).returning(), *key, *ev_names),
        "events_recent": _compile(
            E.select(*ev_cols).where(where_key(E) & (E.timestamp >= _p("after")))
            .order_by(E.timestamp.desc(), E.id.desc()).limit(_p("limit")), *key, "after", "limit"),
        "events_slice": _compile(
            E.select(*ev_cols).where(where_key(E)).order_by(E.timestamp, E.id)
            .limit(_p("limit")).offset(_p("offset")), *key, "limit", "offset"),
        "event_count": _compile(E.select(pw.fn.COUNT(E.id)).where(where_key(E)), *key),
        "usage_insert": _compile(
            U.insert_many([tuple(_p(n) for n in key + usage_names)],
                          fields=[U.app_name, U.user_id, U.session_id, *(getattr(U, n) for n in usage_names)])
            .returning(),
            *key, *usage_names),
        "usage_of_session": _compile(
            U.select(*(getattr(U, n) for n in usage_names)).where(where_key(U)).order_by(U.timestamp, U.event_id),
            *key),
        "state_upsert": _compile(
            T.insert_many([tuple(_p(n) for n in key + ("scope", "state_key", "state_value", "updated_at"))],
                          fields=[*st_cols, T.state_value, T.updated_at])
            .on_conflict(conflict_target=list(st_cols),
                         update={T.state_value: pw.EXCLUDED.state_value, T.updated_at: pw.EXCLUDED.updated_at}),
            *key, "scope", "state_key", "state_value", "updated_at"),
        "state_delete": _compile(
            T.delete().where((T.app_name == _p("app")) & (T.user_id == _p("user")) & (T.session_id == _p("session"))
                             & (T.scope == _p("scope")) & (T.state_key == _p("state_key"))),
            *key, "scope", "state_key"),
        "state_delete_session": _compile(T.delete().where(scope_is(SESSION, _p("app"), _p("user"), _p("session"))),
                                         *key),
        "state_merged": _compile(
            T.select(T.scope, T.state_key, T.state_value).where(
                scope_is(APP, _p("app"), _literal(""), _literal("")) | scope_is(USER, _p("app"), _p("user"), _literal(""))
                | scope_is(SESSION, _p("app"), _p("user"), _p("session"))),
            "app", "app", "user", "app", "user", "session"),
        "state_scope": _compile(
            T.select(T.scope, T.state_key, T.state_value).where(
                (T.app_name == _p("app")) & (T.user_id == _p("user")) & (T.session_id == _p("session"))
                & (T.scope == _p("scope"))), *key, "scope"),
    }
    state_table = T._meta.table_name
    sql["state_of_keys"] = (
        f"SELECT t.app_name, t.user_id, t.session_id, t.scope, t.state_key, t.state_value "
        f"FROM {db.json_tuples(4)} AS k JOIN {state_table} AS t ON t.app_name = k.k0 "
        "AND t.user_id = k.k1 AND t.session_id = k.k2 AND t.scope = k.k3")
    # list_sessions: one statement per filter, keyset columns aligned with an index.
    listed = (S.app_name, S.user_id, S.session_id, S.created_at, S.updated_at, S.revision, S.incarnation)
    # Newest first: the same statements ordered and compared the other way (SQLite
    # reads the same index backwards).
    for variant, fixed, order in (
        ("list_app_user", ("app", "user"), (S.updated_at, S.session_id)),
        ("list_app", ("app",), (S.updated_at, S.user_id, S.session_id)),
        ("list_user", ("user",), (S.updated_at, S.app_name, S.session_id)),
        ("list_all", (), (S.updated_at, S.app_name, S.user_id, S.session_id)),
    ):
        for suffix, newest in (("", False), ("_newest", True)):
            keys, params = pw.Tuple(*order), pw.Tuple(*(_p(f.name) for f in order))
            cond = keys < params if newest else keys > params
            for name in reversed(fixed):
                cond = ((S.app_name if name == "app" else S.user_id) == _p(name)) & cond
            query = (S.select(*listed).where(cond).order_by(*(f.desc() if newest else f for f in order))
                     .limit(_p("limit")))
            sql[variant + suffix] = _compile(query, *fixed, *(f.name for f in order), "limit")
    return sql
