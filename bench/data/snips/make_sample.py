"""Regenerate bench/data/snips/{intent,place}.jsonl from the SNIPS NLU benchmark (2017-06).

    python bench/data/snips/make_sample.py path/to/nlu-benchmark/2017-06-custom-intent-engines

Deterministic: the same source files give the same bytes (see README.md in this folder).
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
INTENTS = {
    "AddToPlaylist": "add_to_playlist",
    "BookRestaurant": "book_restaurant",
    "GetWeather": "get_weather",
    "PlayMusic": "play_music",
    "RateBook": "rate_book",
    "SearchCreativeWork": "search_creative_work",
    "SearchScreeningEvent": "search_screening_event",
}
PER_INTENT = 60
PLACE_SLOTS = {"city", "state", "country", "geographic_poi"}
PLACE_ROWS = 300


def utterances(path: Path, intent: str) -> list[list[dict[str, str]]]:
    return [u["data"] for u in json.loads(path.read_text(encoding="utf-8"))[intent]]


def clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def intent_rows(source: Path, rng: random.Random) -> list[dict[str, str]]:
    rows = []
    for intent, label in INTENTS.items():
        texts = sorted({clean("".join(s["text"] for s in u))
                        for u in utterances(source / intent / f"validate_{intent}.json", intent)})
        rng.shuffle(texts)
        rows += [{"text": text, "label": label} for text in texts[:PER_INTENT]]
    rng.shuffle(rows)
    return rows


def place_row(data: list[dict[str, str]]) -> dict[str, str] | None:
    """The request and the span from its first to its last place slot ("Austin, TX")."""
    text, start, end = "", None, None
    for segment in data:
        if segment.get("entity") in PLACE_SLOTS:
            start = len(text) if start is None else start
            end = len(text) + len(segment["text"])
        text += segment["text"]
    if start is None or end is None:
        return None
    return {"text": clean(text), "place": clean(text[start:end]).strip(" ,.")}


def place_rows(source: Path, rng: random.Random) -> list[dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for intent in ("GetWeather", "BookRestaurant"):
        for data in utterances(source / intent / f"validate_{intent}.json", intent) + utterances(
            source / intent / f"train_{intent}_full.json", intent
        ):
            row = place_row(data)
            if row is not None:
                found.setdefault(row["text"], row)
    rows = [found[text] for text in sorted(found)]
    rng.shuffle(rows)
    return rows[:PLACE_ROWS]


def write(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    source = Path(argv[0])
    write(HERE / "intent.jsonl", intent_rows(source, random.Random(2017)))
    write(HERE / "place.jsonl", place_rows(source, random.Random(2018)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
