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

# User turns of the offline tasks (lmm_r1/toy/tasks/). The R1 system prompt above carries the answer format; the
# Sokoban system prompt does not, so the Sokoban user turn asks for the tags itself (PAPER.md §5).
SOKOBAN_USER = (
    "Solve this Sokoban level. Answer with the moves as a comma-separated sequence of Left, Right, Up and Down, "
    "with your reasoning in <think> </think> and the moves in <answer> </answer>."
)
ARITH_USER = "Compute {expression} modulo {modulus}."
# percept: arith's problems with the operands only in the image (one coloured digit per cell, left to right).
PERCEPT_USER = "Compute {pattern} modulo {modulus}, reading each ? from the image, left to right."
GEOMETRY_USER = {
    "area": "The figure has base {base} and height {height}. Find its area.",
    "perimeter": "The figure has sides {base} and {height}. Find its perimeter.",
    "height": "The figure has area {area} and base {base}. Find its height.",
    "perimeter_triangle": "The triangle has sides {a}, {b} and {c}. Find its perimeter.",
    "angle": "In the triangle, two angles are {a} and {b} degrees. Find the third angle in degrees.",
}

# Benchmark user turns (lmm_r1/evalsets.py). GPQA-Diamond: the simple-evals multiple-choice instruction.
GPQA_USER = ("Answer the following multiple choice question. The last line of your response should be the letter "
             "of the correct option.\n\n{question}\n\n{options}")


def olympiadbench_user(question: str, subfield: str, kind: str, multiple: bool) -> str:
    """OlympiadBench's user turn: lmms-eval's ``olympiadbench_doc_to_text``, what the paper's numbers used."""
    return (f"The following is a question from an International {subfield} competition.\n{question}\n"
            + (f"The question has multiple answers, each of them should be {kind}.\n" if multiple else
               f"The answer of the question should be {kind}.\n")
            + "Please calculate the answer according to the given requirements and the information provided. "
              "Please use LaTeX format to represent the variables and formulas used in the solution process "
              "and results. Please end your solution with "
            + ("So the final answer is \\boxed{multiple answers connected with commas}.\n" if multiple else
               '"So the final answer is \\boxed{answer}."\n'))


# The optional LLM answer extractor (lmm_r1/judge.py): a short few-shot prompt in the style of the
# MathVista/MathVerse extractors.
JUDGE_EXTRACT_PROMPT = """You are given a question and a model's response to it. Extract the model's final answer \
and output it with no explanation: a number, a LaTeX expression, or an option letter for multiple-choice \
questions. If the response gives no answer, output null.

Question: What is the value of x if 2x + 3 = 11?
Model response: Subtracting 3 gives 2x = 8, so x = 4.
Extracted answer: 4

Question: Which angle is largest? Choices: (A) 30 (B) 45 (C) 60 (D) 90
Model response: <think> The right angle is the largest. </think><answer> $90$, option D </answer>
Extracted answer: D

Question: Find the area of the sector.
Model response: I cannot determine the radius from the figure.
Extracted answer: null

Question: {question}
Model response: {response}
Extracted answer:"""
