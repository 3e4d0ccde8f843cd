"""Post-processing and a cheap quality measure for generated descriptions.

Post-processing follows the original (newlines removed) and rejects degenerate answers (empty, too
short, looping) so that the runner can re-ask. The quality measure counts what the paper's prompt
asks for (body parts, movement verbs) against what small models drift into (people's names, ages,
clothing, places): a crude lexical proxy, meant to compare prompt templates by numbers, not to judge
kinematic correctness.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


BODY_PARTS = _wordset(
    """head heads neck necks face chin shoulder shoulders arm arms upperarm elbow elbows forearm forearms
    wrist wrists hand hands palm palms finger fingers thumb thumbs fist fists torso torsos chest back spine
    trunk waist abdomen stomach belly core hip hips pelvis buttocks glutes leg legs thigh thighs knee knees
    shin shins calf calves ankle ankles foot feet heel heels toe toes sole soles body bodies
    limb limbs joint joints"""
)

MOVEMENT_WORDS = _wordset(
    """bend bends bending bent lift lifts lifting raise raises raising lower lowers lowering extend extends
    extending straighten straightens rotate rotates rotating turn turns turning twist twists twisting swing
    swings swinging step steps stepping push pushes pushing pull pulls pulling lean leans leaning reach
    reaches reaching kick kicks kicking stretch stretches stretching flex flexes flexing squat squats crouch
    crouches shift shifts shifting tilt tilts tilting move moves moving"""
)

CLOTHING = _wordset(
    """shirt shirts t-shirt jacket jackets coat coats dress dresses skirt skirts jeans trousers pants shorts
    sweater hoodie hat hats cap caps helmet shoe shoes sneakers boots boot sock socks glove gloves scarf
    uniform outfit suit tie jersey leggings sunglasses glasses necklace earrings bracelet clothing clothes
    wearing dressed"""
)

PLACES = _wordset(
    """park beach gym stadium street streets city town village kitchen bedroom office school classroom
    restaurant cafe bar mall store shop forest mountain mountains river lake ocean sea garden field court
    arena studio stage theater theatre hospital church airport station home house apartment"""
)

# A compact list of common first names: enough to catch "a man named Alex"-style stories.
NAMES = _wordset(
    """alex alice amy andrew anna ben bob carlos charlie chris daniel david elena emily emma eric ethan
    hannah jacob james jane jason jessica john jose julia kate kevin laura lily lucas luke maria
    mary matt maya michael mike mia noah olivia oliver paul peter rachel ryan sam sara sarah sophia tom
    tony william zoe lisa leo liam mateo ava chloe jake josh kyle megan nick nina rosa samantha sofia
    steve susan tim"""
)

# Looks and persona: what small models write instead of movement ("long blonde hair, bright blue eyes").
APPEARANCE = _wordset(
    """hair blonde brunette eyes smile smiling beard tall height handsome beautiful pretty attractive
    freckles tattoo tattoos makeup lipstick"""
)

_NAMED = re.compile(r"\b(named|name is|called) [A-Z][a-z]+")
_AGE = re.compile(r"\b\d{1,3}[- ]year[- ]old\b", re.IGNORECASE)

NewlineMode = Literal["space", "remove"]


def postprocess(text: str, newlines: NewlineMode = "space") -> str:
    """Strip newlines as the original did.

    ``"remove"`` deletes them exactly as the original code (``"end.\\nThe"`` -> ``"end.The"``);
    ``"space"`` (default) puts a space in their place so that sentences do not fuse into one token.
    Either way surrounding whitespace is trimmed and runs of spaces collapse.
    """
    if newlines == "remove":
        text = text.replace("\r", "").replace("\n", "")
    else:
        text = re.sub(r"\s*[\r\n]+\s*", " ", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def degenerate_reason(text: str, *, min_words: int = 5, min_distinct_ngram_ratio: float = 0.5) -> str | None:
    """Why an answer is unusable (empty, too short, a repetition loop), or None if it is fine."""
    ws = words(text)
    if not text.strip():
        return "empty"
    if len(ws) < min_words:
        return f"too short ({len(ws)} words)"
    n = 4
    if len(ws) >= 24:
        grams = [tuple(ws[j : j + n]) for j in range(len(ws) - n + 1)]
        ratio = len(set(grams)) / len(grams)
        if ratio < min_distinct_ngram_ratio:
            return f"repetition loop (distinct 4-gram ratio {ratio:.2f})"
    return None


@dataclass
class QualityReport:
    descriptions: int = 0
    share_body_parts: float = 0.0  # mentions at least one body part
    mean_distinct_body_parts: float = 0.0
    share_movement: float = 0.0  # mentions at least one movement verb
    share_names: float = 0.0  # "named X", "name is X", a common first name, or an age
    share_clothing: float = 0.0
    share_places: float = 0.0
    share_appearance: float = 0.0  # hair, eyes, smile, height ...
    share_off_topic: float = 0.0  # names or clothing or places or appearance
    share_degenerate: float = 0.0
    mean_words: float = 0.0
    score: float = 0.0  # share_body_parts - share_off_topic - share_degenerate

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def describe_text(text: str) -> dict[str, Any]:
    """Per-description flags used by ``quality_report``."""
    ws = words(text)
    wset = set(ws)
    # A name counts only capitalised, as a whole word.
    names = bool(_NAMED.search(text) or _AGE.search(text)) or any(
        re.search(rf"\b{w.capitalize()}\b", text) for w in wset & NAMES
    )
    return {
        "body_parts": sorted(wset & BODY_PARTS),
        "movement": bool(wset & MOVEMENT_WORDS),
        "names": names,
        "clothing": bool(wset & CLOTHING),
        "places": bool(wset & PLACES),
        "appearance": bool(wset & APPEARANCE),
        "degenerate": degenerate_reason(text) is not None,
        "words": len(ws),
    }


def quality_report(texts: Iterable[str]) -> QualityReport:
    """Shares over all descriptions; higher ``score`` is better."""
    flags = [describe_text(t) for t in texts]
    n = len(flags)
    if n == 0:
        return QualityReport()

    def share(pred) -> float:
        return sum(1 for f in flags if pred(f)) / n

    rep = QualityReport(
        descriptions=n,
        share_body_parts=share(lambda f: bool(f["body_parts"])),
        mean_distinct_body_parts=sum(len(f["body_parts"]) for f in flags) / n,
        share_movement=share(lambda f: f["movement"]),
        share_names=share(lambda f: f["names"]),
        share_clothing=share(lambda f: f["clothing"]),
        share_places=share(lambda f: f["places"]),
        share_appearance=share(lambda f: f["appearance"]),
        share_off_topic=share(lambda f: f["names"] or f["clothing"] or f["places"] or f["appearance"]),
        share_degenerate=share(lambda f: f["degenerate"]),
        mean_words=sum(f["words"] for f in flags) / n,
    )
    rep.score = rep.share_body_parts - rep.share_off_topic - rep.share_degenerate
    return rep


def format_reports(reports: dict[str, QualityReport]) -> str:
    """A fixed-width table, one row per group (e.g. per template)."""
    cols = [
        "descriptions",
        "score",
        "share_body_parts",
        "mean_distinct_body_parts",
        "share_movement",
        "share_names",
        "share_clothing",
        "share_places",
        "share_appearance",
        "share_degenerate",
        "mean_words",
    ]
    short = ["n", "score", "body", "parts", "move", "names", "cloth", "places", "looks", "degen", "words"]
    width = max([len(k) for k in reports] + [8])
    lines = [f"{'group':<{width}} " + " ".join(f"{s:>6}" for s in short)]
    for name, rep in reports.items():
        d = rep.to_dict()
        cells = [f"{d[c]:>6}" if isinstance(d[c], int) else f"{d[c]:>6.2f}" for c in cols]
        lines.append(f"{name:<{width}} " + " ".join(cells))
    return "\n".join(lines)
