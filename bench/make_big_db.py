"""Build a session file for timing the ``adk-lite`` command on real volumes.

    python -m bench.make_big_db big.sqlite3 [--sessions 10000] [--events 20]

Sessions spread over 3 apps and 500 users, last updated over the past 90 days (so
``prune --older-than 30d`` has work), each with ``--events`` events (text turns,
tool calls and responses) appended in one ``append_events`` batch, and state in
every scope. The text is realistic for search: sentences of words drawn with a Zipf
law from common words, topic words, cities (with accents) and a long tail of names
and product codes (:class:`Text`, seeded: the same file every time).
"""

import itertools
import random
import time

from adk_lite import DatabaseSessionService, Event, EventActions

from .harness import new_file_args


COMMON = ("the a to and of i you is it for in that my can on with this be have please what do order not "
          "your we are was me so will get at help about how would like know if there when need just time thanks "
          "check back one more also could today now want any make sure yes no still new see thing right").split()
TOPICS = ("refund order delivery package weather flight booking hotel invoice payment card account password "
          "subscription discount return exchange warranty appointment reservation ticket shipping tracking "
          "address email phone laptop battery screen charger headphones shoes jacket size color receipt "
          "balance transfer loan mortgage insurance claim doctor prescription pharmacy recipe dinner "
          "vegetarian allergy museum train airport luggage visa passport restaurant table menu coffee").split()
CITIES = ("Paris London Tokyo Berlin Madrid Rome Lisbon Dublin Oslo Vienna Prague Warsaw Zürich Montréal "
          "São Paulo Kraków Reykjavík Athens Seoul Sydney").split()


def _vocabulary(rng) -> tuple[list, list]:
    """Words ranked for a Zipf draw: common words, topic words, cities, then a long
    tail of names and codes (so most words are rare, as in real chats)."""
    syllables = ["ka", "lo", "mi", "ren", "tor", "sa", "vel", "din", "qu", "ar", "bel", "cor", "fen", "gra"]
    tail = ["".join(rng.choice(syllables) for _ in range(rng.randrange(2, 4))) for _ in range(6000)]
    tail += [f"sku{n}" for n in rng.sample(range(10000, 99999), 3000)]
    words = COMMON + TOPICS + CITIES + tail
    return words, [1 / (rank + 1) ** 1.05 for rank in range(len(words))]


class Text:
    """Realistic chat text: sentences of Zipf-distributed words, a seeded generator."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.words, weights = _vocabulary(self.rng)
        self.cum = list(itertools.accumulate(weights))

    def sentence(self, low: int = 4, high: int = 30) -> str:
        words = self.rng.choices(self.words, cum_weights=self.cum, k=self.rng.randrange(low, high))
        return " ".join(words).capitalize() + self.rng.choice([".", "?", "!", "."])


def events_for(i: int, n: int, start: float, text: "Text" = None) -> list:
    text = text or Text(i)
    rng = text.rng
    out = []
    for j in range(n):
        kind = j % 4
        if kind == 0:
            content = {"role": "user", "parts": [{"text": " ".join(text.sentence() for _ in range(rng.randrange(1, 3)))}]}
        elif kind == 1:
            content = {"role": "model", "parts": [{"function_call": {"name": rng.choice(["get_weather", "lookup_order",
                                                                                          "issue_refund", "book_table"]),
                                                                     "args": {"city": rng.choice(CITIES),
                                                                              "order_id": rng.randrange(10**6)}}}]}
        elif kind == 2:
            content = {"role": "user", "parts": [{"function_response": {"name": "lookup_order", "response": {
                "status": rng.choice(["shipped", "delayed", "approved", "refused"]), "note": text.sentence(3, 12)}}}]}
        else:
            content = {"role": "model", "parts": [{"text": " ".join(text.sentence() for _ in range(rng.randrange(1, 5)))}]}
        out.append(Event(author="user" if kind in (0, 2) else "support_agent", invocation_id=f"inv-{i}-{j // 4}",
                         timestamp=start + j, content=content,
                         actions=EventActions(state_delta={"turns": j} if kind == 3 else {})))
    return out


def main() -> None:
    args = new_file_args(__doc__, sessions=10_000, events=20)
    started, now = time.perf_counter(), time.time()
    build(args.path, args.sessions, args.events, now)
    with DatabaseSessionService(args.path, read_only=True) as svc:
        stats = svc.get_stats()
    print(f"{stats['sessions']} sessions, {stats['events']} events, {stats['db_bytes']} bytes "
          f"in {time.perf_counter() - started:.1f} s")


def build(path: str, sessions: int, events: int, now: float) -> None:
    """Write ``sessions`` sessions of ``events`` events each to a new file ``path``."""
    text = Text()
    with DatabaseSessionService(path) as svc:
        for i in range(sessions):
            app, user = f"app-{i % 3}", f"user-{i % 500}"
            session = svc.create_session(app, user, session_id=f"s-{i}",
                                         state={"topic": "weather", "user:lang": "en", "app:version": 2})
            svc.append_events(session, events_for(i, events, now - 90 * 86400 * (1 - i / sessions), text))


if __name__ == "__main__":
    main()
