"""All prompt text of the kit, in one place (PAPER.md §5).

The R1 system prompt is verbatim, grammar included ("first thinks ... then provides"): changing one character
changes what the paper trained on. The baseline is evaluated *without* it (it hurts the untrained model).
"""

from __future__ import annotations

# PAPER.md §5, verbatim (note the missing space after "$...$.": it is in the released scripts).
R1_SYSTEM_PROMPT = (
    "You are a helpful assistant good at solving math problems with step-by-step reasoning. You should first "
    "thinks about the reasoning process in the mind and then provides the user with the answer. Your answer must "
    "be in latex format and wrapped in $...$.The reasoning process and answer are enclosed within <think> </think> "
    "and <answer> </answer> tags, respectively, i.e., <think> Since $1+1=2$, so the answer is $2$. </think>"
    "<answer> $2$ </answer>, which means your output should start with <think> and end with </answer>."
)

# PAPER.md §5, verbatim; the "\n" is a newline in the released Python source.
SOKOBAN_SYSTEM_PROMPT = (
    "You're going to play a game of Sokoban, where the goal is to manipulate the green character to push the "
    "yellow box into the target area (an area with a red dot in the center). \nGenerate all actions from the "
    "initial frame to the end at once."
)

SYSTEM_PROMPTS = {"r1": R1_SYSTEM_PROMPT, "sokoban": SOKOBAN_SYSTEM_PROMPT, "none": None}


def system_prompt(name: str) -> str | None:
    """The system prompt called ``name`` ("r1", "sokoban" or "none" for the baseline)."""
    try:
        return SYSTEM_PROMPTS[name]
    except KeyError:
        raise ValueError(f"unknown system prompt {name!r}; choose one of {sorted(SYSTEM_PROMPTS)}") from None

# User turns of the offline tasks (lmm_r1/tasks/). The R1 system prompt above carries the answer format; the
# Sokoban system prompt does not, so the Sokoban user turn asks for the tags itself (PAPER.md §5).
SOKOBAN_USER = (
    "Solve this Sokoban level. Answer with the moves as a comma-separated sequence of Left, Right, Up and Down, "
    "with your reasoning in <think> </think> and the moves in <answer> </answer>."
)
ARITH_USER = "Compute {expression}."
PERCEPT_USER = {
    "count": "How many {color} squares are in the image?",
    "total": "How many squares are in the image?",
    "sum": "How many {color} and {other} squares are in the image together?",
    "difference": "How many more {color} squares than {other} squares are in the image?",
}
GEOMETRY_USER = {
    "area": "The figure has base {base} and height {height}. Find its area.",
    "perimeter": "The figure has sides {base} and {height}. Find its perimeter.",
    "height": "The figure has area {area} and base {base}. Find its height.",
    "perimeter_triangle": "The triangle has sides {a}, {b} and {c}. Find its perimeter.",
    "angle": "In the triangle, two angles are {a} and {b} degrees. Find the third angle in degrees.",
}
