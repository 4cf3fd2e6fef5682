"""An error's causes: what raised it and what it was handling, as far down as they go."""

from __future__ import annotations

MAX_CAUSES = 20


def causes(error: BaseException) -> list[BaseException]:
    """`error` and every exception behind it (`__cause__`, `__context__`, and a database
    driver's `orig` under SQLAlchemy's wrapper), each once, at most MAX_CAUSES."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo and len(seen) < MAX_CAUSES:
        item = todo.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__, getattr(item, "orig", None)]
    return seen
