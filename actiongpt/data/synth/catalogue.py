"""The action catalogue: motion model, BABEL action categories and phrasings of every action.

Phrasings imitate BABEL's free-form labels (lower case, 1-5 words; the first is the most common).
``zeroshot`` phrasings are held out: they label only the ``zeroshot`` split and never appear in
train/val/test, so a text encoder (or Action-GPT's LLM descriptions) is measured on phrases it never
saw (e.g. "stroll ahead" for a motion trained as "walk forward"). Some training phrasings are shared
between actions on purpose ("wave" for either hand), as in BABEL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import gestures as G
from . import locomotion as L
from . import postures as P
from .common import Ctx, Motion

TRANSITION_LABEL = "transition"
TPOSE_PHRASINGS = ("t pose", "t-pose", "tpose")


@dataclass(frozen=True)
class ActionSpec:
    """One action: its motion model, BABEL categories, training and held-out phrasings, and the body
    state it needs at the start and leaves at the end ("stand" or "sit")."""

    name: str
    model: Callable[[Ctx], Motion]
    act_cat: tuple[str, ...]
    phrasings: tuple[str, ...]
    zeroshot: tuple[str, ...]
    weight: float = 1.0
    start_state: str = "stand"
    end_state: str = "stand"


def _a(
    name: str, model: Callable[[Ctx], Motion], cats: str, phrasings: str, zeroshot: str, **kw
) -> ActionSpec:
    split = lambda s: tuple(p.strip() for p in s.split("|"))  # noqa: E731
    return ActionSpec(name, model, split(cats), split(phrasings), split(zeroshot), **kw)


ACTIONS: tuple[ActionSpec, ...] = (
    # locomotion
    _a("walk_forward", L.walk_forward, "walk", "walk forward|walk|walk straight|walking forward|walk ahead",
       "stroll ahead|amble forward", weight=3.0),
    _a("walk_backward", L.walk_backward, "walk|backwards movement",
       "walk backwards|walk backward|"
       "walk back|walking backwards|move backwards", "retreat backwards|back away slowly"),
    _a("sidestep_left", L.sidestep_left, "step|sideways movement",
       "sidestep left|step to the left|side step left|walk sideways to the left|shuffle left",
       "slide leftward|move laterally to the left"),
    _a("sidestep_right", L.sidestep_right, "step|sideways movement",
       "sidestep right|step to the right|side step right|walk sideways to the right|shuffle right",
       "slide rightward|move laterally to the right"),
    _a("jog", L.jog, "jog", "jog|jog forward|jogging|light run|run slowly", "trot forward|lope ahead"),
    _a("run", L.run, "run", "run|run forward|running|run fast|sprint", "dash ahead|race forward", weight=1.5),
    _a("walk_in_circle", L.walk_in_circle, "walk|turn|circular movement",
       "walk in a circle|walk in circles|circle around|walk around in a circle|walk in a curve",
       "loop around on foot|trace a round path"),
    _a("turn_left", L.turn_left, "turn", "turn left|turn to the left|rotate left|turn left in place",
       "pivot leftward|face towards the left", weight=1.5),
    _a("turn_right", L.turn_right, "turn", "turn right|turn to the right|rotate right|turn right in place",
       "pivot rightward|face towards the right", weight=1.5),
    _a("turn_around", L.turn_around, "turn", "turn around|turn back|turn 180 degrees|turn to face backwards",
       "about face|reverse facing direction"),
    _a("step_forward", L.step_forward, "step|forward movement",
       "step forward|take a step forward|"
       "step ahead|one step forward", "take a pace forward|advance one pace"),
    _a("step_back", L.step_back, "step|backwards movement",
       "step back|step backward|take a step back|step backwards", "take a pace back|withdraw one pace"),
    _a("march_in_place", L.march_in_place, "march|step",
       "march in place|march|marching on the spot|high knees|step in place",
       "lift knees alternately|stomp on the spot"),
    # jumps
    _a("jump_in_place", L.jump_in_place, "jump", "jump|jump in place|jump up|jump up and down|jumping",
       "leap upward|spring into the air", weight=1.5),
    _a("jump_forward", L.jump_forward, "jump|forward movement",
       "jump forward|long jump|jump ahead|broad jump|leap forward", "bound ahead|spring forwards"),
    _a("hop_on_one_leg", L.hop_on_one_leg, "hop|jump",
       "hop on one leg|hop on one foot|"
       "hop|hopping on one leg",
       "bounce on a single foot|skip on one foot"),
    _a("jumping_jacks", L.jumping_jacks, "jumping jacks|exercise/training",
       "jumping jacks|do jumping jacks|jumping jack|perform jumping jacks", "star jumps|side straddle hops"),
    # whole-body postures
    _a("squat", P.squat, "squat|exercise/training", "squat|squat down|do squats|squats|bend knees",
       "deep knee bend|crouch and rise"),
    _a("lunge", P.lunge, "lunge|exercise/training", "lunge|lunge forward|do a lunge|forward lunge",
       "split squat|long step and dip"),
    _a("sit_down", P.sit_down, "sit",
       "sit down|sit|"
       "sit on chair|sitting down", "take a seat|lower onto a seat",
       end_state="sit"),
    _a("stand_up", P.stand_up, "stand up", "stand up|get up|rise|stand up from chair",
       "get to your feet|rise from the seat", start_state="sit"),
    _a("bend_forward", P.bend_forward, "bend|touch ground",
       "bend forward|touch toes|"
       "bend down|bend over|touch the ground", "reach for the floor|fold at the hips"),
    _a("bow", P.bow, "bow|bend", "bow|bow down|take a bow|bowing",
       "bend politely at the waist|"
       "nod the torso"),
    _a("side_bend", P.side_bend, "bend|stretch",
       "bend to the side|side bend|lean sideways|stretch to the side|lean to the side",
       "tilt torso sideways|lateral trunk stretch"),
    _a("kick_right", P.kick_right, "kick",
       "kick with right leg|right leg kick|kick right|kick with right foot|front kick right",
       "boot with the right foot|strike out with right leg"),
    _a("kick_left", P.kick_left, "kick",
       "kick with left leg|left leg kick|kick left|kick with left foot|front kick left",
       "boot with the left foot|strike out with left leg"),
    _a("balance_one_leg", P.balance_one_leg, "balance|leg movements",
       "stand on one leg|balance on one leg|balance|lift one leg", "one-legged stance|hold a flamingo pose"),
    _a("stand_still", P.stand_still, "stand", "stand|stand still|standing|stand in place|idle",
       "remain motionless|stay put", weight=2.0),
    _a("look_around", P.look_around, "look|turn head",
       "look around|look left and right|"
       "turn head|looking around",
       "glance around|scan the surroundings"),
    # arms
    _a("punch_right", G.punch_right, "punch",
       "punch with right hand|right hand punch|punch right|throw right punch",
       "jab with right fist|strike with right fist"),
    _a("punch_left", G.punch_left, "punch",
       "punch with left hand|left hand punch|"
       "punch left|throw left punch",
       "jab with left fist|strike with left fist"),
    _a("boxing", G.boxing, "punch|fight",
       "boxing|box|"
       "punch|punching|throw punches", "spar with fists|shadow box"),
    _a("wave_right", G.wave_right, "wave|hand movements",
       "wave right hand|wave with right hand|wave|waving right hand|wave hello",
       "greet with right hand|salute with right palm"),
    _a("wave_left", G.wave_left, "wave|hand movements",
       "wave left hand|wave with left hand|"
       "wave|waving left hand",
       "greet with left hand|salute with left palm"),
    _a("wave_both", G.wave_both, "wave|hand movements",
       "wave both hands|wave with both hands|wave both arms|waving both hands",
       "greet with both hands|flail both arms overhead"),
    _a("raise_both_arms", G.raise_both_arms, "raising body part|arm movements",
       "raise both arms|raise arms|"
       "lift arms up|arms up|raise both hands", "put both hands up|reach both arms skyward"),
    _a("raise_right_arm", G.raise_right_arm, "raising body part|arm movements",
       "raise right arm|raise right hand|"
       "lift right arm|right arm up", "put right hand up|hold right hand high"),
    _a("raise_left_arm", G.raise_left_arm, "raising body part|arm movements",
       "raise left arm|raise left hand|lift left arm|left arm up", "put left hand up|hold left hand high"),
    _a("clap", G.clap, "clap|hand movements", "clap|clap hands|clapping|clap hands together",
       "applaud|give a round of applause"),
    _a("arm_circles", G.arm_circles, "arm movements|exercise/training",
       "arm circles|circle arms|"
       "rotate arms|swing arms in circles", "windmill the arms|make circles with arms"),
    _a("throw", G.throw, "throw",
       "throw|throw a ball|"
       "throw something|throw ball overhand", "toss an object|hurl a ball"),
    _a("drink", G.drink, "drink|interact with/use object", "drink|drink from a cup|drink water|take a drink",
       "take a sip|sip from a glass"),
    _a("point", G.point, "point|hand movements", "point|point forward|point at something|point with finger",
       "indicate a direction|gesture towards something"),
    _a("shrug", G.shrug, "shrug|move up/down", "shrug|shrug shoulders|shrugging",
       "raise shoulders in doubt|"
       "lift both shoulders"),
)  # fmt: skip

TPOSE = ActionSpec("t_pose", P.t_pose, ("t pose",), TPOSE_PHRASINGS, (), weight=0.0)
BY_NAME: dict[str, ActionSpec] = {a.name: a for a in ACTIONS}


def check_catalogue(actions: tuple[ActionSpec, ...] = ACTIONS) -> None:
    """Invariants: unique names; phrasings lower case, 1-5 words; zero-shot phrasings disjoint from every
    training phrasing. Raises ValueError naming the offending action and phrase."""
    if len({a.name for a in actions}) != len(actions):
        raise ValueError("duplicate action names in the catalogue")
    train = {p for a in actions for p in a.phrasings}
    for a in actions:
        if not a.phrasings or not a.zeroshot:
            raise ValueError(f"action {a.name}: needs training and zero-shot phrasings")
        for p in (*a.phrasings, *a.zeroshot):
            if p != p.lower().strip() or not 1 <= len(p.split()) <= 5:
                raise ValueError(f"action {a.name}: phrase {p!r} must be lower case with 1-5 words")
        for p in a.zeroshot:
            if p in train:
                raise ValueError(f"action {a.name}: zero-shot phrase {p!r} is also a training phrase")
