"""Prompt templates for description generation.

The paper's prompt function (§2.1) is the default. A template is data: system text, few-shot pairs and
the prompt function, so that it can be recorded in every cache line and hashed into the cache key.
Small local models need more than the bare prompt (SmolLM2-135M with the paper's prompt alone mostly writes
stories about invented characters; a system message plus two few-shot examples keeps it on body movements),
hence the few-shot preset.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from actiongpt.config import ConfigError

PAPER_PROMPT = "Describe a person's body movements who is performing the action {label} in detail"
# The original code (teach/model/teach.py::get_gpt3_texts) appends " in details" (plural).
ORIGINAL_CODE_PROMPT = "Describe a person's body movements who is performing the action {label} in details"

BODY_PARTS_SYSTEM = (
    "You describe human body movements for motion capture. Answer in 3 to 5 short sentences in the present "
    "tense about the person's body parts only: head, torso, arms, hands, hips, legs, knees and feet, and "
    "how they move. Never invent names, ages, clothing, places, feelings or a story."
)

# Two short, hand-written examples (prompt -> body-movement answer). The labels are deliberately not
# common BABEL labels so the model does not copy an answer verbatim for a real label.
BODY_PARTS_FEW_SHOT: tuple[tuple[str, str], ...] = (
    (
        "wave with the right hand",
        "The person stands upright with the feet apart. The right arm lifts to the side until the hand is "
        "above the shoulder. The right forearm swings left and right from the elbow while the hand stays "
        "open. The left arm hangs relaxed by the hip.",
    ),
    (
        "sit down on a chair",
        "The person bends both knees and pushes the hips backwards. The torso leans forward to keep the "
        "balance while the arms reach slightly forward. The hips lower until they rest on the seat, then "
        "the back straightens and the hands rest on the thighs.",
    ),
)


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt template: ``prompt`` is the prompt function with a ``{label}`` placeholder."""

    name: str
    prompt: str = PAPER_PROMPT
    system: str | None = None
    few_shot: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if "{label}" not in self.prompt:
            raise ConfigError(f"prompt template {self.name!r}: prompt {self.prompt!r} has no '{{label}}'")
        try:
            self.prompt.format(label="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"prompt template {self.name!r}: prompt {self.prompt!r} is not a valid format string "
                f"with only '{{label}}' ({exc})"
            ) from exc
        for pair in self.few_shot:
            if len(pair) != 2 or not all(isinstance(s, str) and s.strip() for s in pair):
                raise ConfigError(
                    f"prompt template {self.name!r}: few-shot pair {pair!r} is not (label, answer)"
                )

    def user_text(self, label: str) -> str:
        """The prompt function f_prompt(label)."""
        return self.prompt.format(label=label)

    def messages(self, label: str) -> list[dict[str, str]]:
        """Chat messages: optional system, few-shot user/assistant turns, then the prompt."""
        out: list[dict[str, str]] = []
        if self.system:
            out.append({"role": "system", "content": self.system})
        for shot_label, answer in self.few_shot:
            out.append({"role": "user", "content": self.user_text(shot_label)})
            out.append({"role": "assistant", "content": answer})
        out.append({"role": "user", "content": self.user_text(label)})
        return out

    def completion_prompt(self, label: str) -> str:
        """A single text prompt for legacy completion endpoints.

        With the paper template this is exactly ``f_prompt(label)``, as the original code sent it. System
        text and few-shot pairs are rendered as plain paragraphs before it.
        """
        if not self.system and not self.few_shot:
            return self.user_text(label)
        parts = [self.system] if self.system else []
        for shot_label, answer in self.few_shot:
            parts.append(f"{self.user_text(shot_label)}\n{answer}")
        parts.append(f"{self.user_text(label)}\n")
        return "\n\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "prompt": self.prompt,
            "system": self.system,
            "few_shot": [list(p) for p in self.few_shot],
        }

    def digest(self) -> str:
        return template_digest(self.to_dict())


def template_digest(template: dict[str, Any]) -> str:
    """Short content hash of a template dict (name excluded: renaming does not change the output)."""
    body = {k: v for k, v in template.items() if k != "name"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


TEMPLATES: dict[str, PromptTemplate] = {
    # Paper §2.1, exact text (straight apostrophe, as the code sends it).
    "paper": PromptTemplate("paper"),
    # The original code's text: "in details".
    "original_code": PromptTemplate("original_code", prompt=ORIGINAL_CODE_PROMPT),
    # The paper prompt behind a system message restricting the answer to body parts.
    "body_parts": PromptTemplate("body_parts", system=BODY_PARTS_SYSTEM),
    # System message + two few-shot examples: what small local models need (see the module doc).
    "body_parts_fewshot": PromptTemplate(
        "body_parts_fewshot", system=BODY_PARTS_SYSTEM, few_shot=BODY_PARTS_FEW_SHOT
    ),
}


@dataclass
class FewShotPair:
    label: str
    answer: str


@dataclass
class PromptConfig:
    """Which template to use; the optional fields replace the preset's parts."""

    template: str = "paper"
    prompt: str | None = None
    system: str | None = None
    few_shot: list[FewShotPair] | None = None


def resolve_template(cfg: PromptConfig) -> PromptTemplate:
    """Build the template from a preset name plus any overridden parts."""
    if cfg.template not in TEMPLATES:
        raise ConfigError(f"prompt.template: unknown template {cfg.template!r}; known: {sorted(TEMPLATES)}")
    base = TEMPLATES[cfg.template]
    changes: dict[str, Any] = {}
    if cfg.prompt is not None:
        changes["prompt"] = cfg.prompt
    if cfg.system is not None:
        changes["system"] = cfg.system or None
    if cfg.few_shot is not None:
        changes["few_shot"] = tuple((p.label, p.answer) for p in cfg.few_shot)
    if not changes:
        return base
    return dataclasses.replace(base, name=f"{base.name}+custom", **changes)


__all__ = [
    "BODY_PARTS_FEW_SHOT",
    "BODY_PARTS_SYSTEM",
    "ORIGINAL_CODE_PROMPT",
    "PAPER_PROMPT",
    "TEMPLATES",
    "FewShotPair",
    "PromptConfig",
    "PromptTemplate",
    "resolve_template",
    "template_digest",
]
