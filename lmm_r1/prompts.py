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

# The baseline row "Qwen2.5-VL-3B CoT" of Table 1: the authors' evaluation fork's ``SYSTEM_PROMPT_COT``
# (ForJadeForest/lmm-r1-eval lmms_eval/models/vllm.py, ``system_prompt_type=cot``), verbatim.
COT_SYSTEM_PROMPT = (
    "You are a helpful assistant good at solving math problems. The user will provide you with a math problem, and "
    "you should solve it with step-by-step reasoning. You should put your final answer within $\\boxed{}$."
)

SYSTEM_PROMPTS = {"r1": R1_SYSTEM_PROMPT, "cot": COT_SYSTEM_PROMPT, "sokoban": SOKOBAN_SYSTEM_PROMPT, "none": None}


def system_prompt(name: str) -> str | None:
    """The system prompt called ``name`` ("r1", "cot" for the fork's baseline, "sokoban", or "none")."""
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
# MageBench Sokoban-Global (microsoft/MageBench env/sokoban_env.py SokobanEnv.system_prompt, Flow/GlobalPlanning.py
# special_prompt_for_task), verbatim: the environment's rules, then the planner's request after the image.
MAGEBENCH_SOKOBAN_SYSTEM = """You're going to play a game of Sokoban, where the goal is to manipulate the green character to push the yellow box into the target area (an area with a red dot in the center). 
You'll use text commands to manipulate your character, and here are the action ID and explaination:
- 'Left': The action character moves to the left, and if there is a box on the left, pushes the box to the left.
- 'Right': The action character moves to the right, and if there is a box on the right, pushes the box to the right.
- 'Up': Character moves up, and if there is a box above, pushes the box up.
- 'Down': The action character moves down, and if there is a box underneath, pushes the box down.

Note: 
1. It is not possible to push two boxes side by side at the same time from the side-by-side direction.
2. The red brick pattern is the wall. The game can go into a lose-lose state, for example if you push the box into a corner where the corner is not the target area. In this case, you should restart the game.
"""  # noqa: E501, W291
MAGEBENCH_GLOBAL_REQUEST = (
    "Please analyze and directly output a list of actions to take. \n\nGenerate all actions to fulfill the task at a "
    "time. Your output should follow this format: ### Analyze\n your analyze.\n### Actions\nA long sequence of "
    "Left, Right, Up, Down, separate by ','"
)

# MageBench Football-Online (env/football_env.py FootballEnv.system_prompt, Flow/Online_HL_FBandSB.py
# special_prompt_for_task), verbatim.
MAGEBENCH_FOOTBALL_SYSTEM = """You're going to play a football game. The character you control wears a yellow jersey with a blue name above his head.
Your goal is to attack the goal on the **right side** according to standard soccer rules. It's your teammates who wear the yellow jersey, and the opponents in the other colors.
You'll use text commands to manipulate your character. Here are the action ID and explaination:

- 'action_left', 'action_top_left', 'action_top', 'action_top_right', 'action_right', 'action_bottom_right', 'action_bottom', 'action_bottom_left': Run in the direction corresponding to the action ID's name.
- 'action_long_pass': perform a long pass to the player on your team. Player to pass the ball to is auto-determined based on the movement direction.
- 'action_high_pass': perform a high pass, similar to action_long_pass.
- 'action_short_pass': perform a short pass, similar to action_long_pass.
- 'action_shot': perform a shot, always in the direction of the opponent's goal.
- 'action_sprint', 'action_release_sprint': start and stop sprinting, sticky action. If sprinting, player moves faster, but has worse ball handling.
- 'action_dribble', 'action_release_dribble': start and stop dribbling, sticky action. Player moves slower, but it is harder to take over the ball from him.

"""  # noqa: E501
MAGEBENCH_FOOTBALL_ONLINE = ("You should perform 1 action for each generation, with this format: \n# analyze\nsome "
                             "analyze\n# action\naction ID\n\nFor example: \n# analyze\n...\n# action\naction_left")

# The paper's Sokoban user turn, verbatim (TideDra/lmm-r1@dd143ad examples/scripts/lmm_r1/train_sokoban.sh, its
# dataset.jsonl example; lmm_r1/sokoban_levels.py writes it into every generated row).
SOKOBAN_PAPER_USER = (
    "You should first thinks about the reasoning process in the mind and then provides the user with the answer, the "
    "answer is a long sequence of Left, Right, Up, Down, separated by ','. The reasoning process and answer are "
    "enclosed within <think> </think> and <answer> </answer> tags, respectively, e.g., <think> To ... </think>"
    "<answer> Left, Right, ... </answer>, which means your output should start with <think> and end with </answer>."
)
ARITH_USER = "Compute {expression} modulo {modulus}."
# percept: arith's problems with the operands only in the image (one coloured digit per cell, left to right).
PERCEPT_USER = "Compute {pattern} modulo {modulus}, reading each ? from the image, left to right."
# geometry: the figure's shape and measurements only in the image (lmm_r1/toy/tasks/geometry.py).
GEOMETRY_USER = {
    "area": "Find the area of the figure modulo 7. The image shows the figure, then its measurements.",
    "perimeter": "Find the perimeter of the figure modulo 7. The image shows the figure, then its sides.",
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


# The authors' evaluation protocol (lmm_r1/protocol.py): text copied verbatim from their lmms-eval fork
# (ForJadeForest/lmm-r1-eval, Apache-2.0) and the LightEval task file it ran (evaluate_text.py). Whitespace,
# typos ("Judement") and doubled braces are part of what the judge saw.

# MathVista / MathVision "step-by-step" hints (mathvista_evals.py / mathvision_evals.py create_one_query).
FORK_HINTS = {
    "multi_choice": "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.",
    "integer": "Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, "
               "at the end.",
    "float1": "Hint: Please answer the question requiring a floating-point number with one decimal place and provide "
              "the final value, e.g., 1.2, 1.3, 1.4, at the end.",
    "float2": "Hint: Please answer the question requiring a floating-point number with two decimal places and provide "
              "the final value, e.g., 1.23, 1.34, 1.45, at the end.",
    "list": "Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., "
            "[1, 2, 3], [1.2, 1.3, 1.4], at the end.",  # MathVista only
    "text": "Hint: Please answer the question requiring a latex expression as an answer and provide the final "
            "expression, e.g., 2\\sqrt{3}, \\frac{1}{3}, at the end.",  # MathVision only
}
# MM-Star (mmstar.yaml post_prompt; utils.replace_prompt is removed from the question first).
MMSTAR_POST_PROMPT = "\nAnswer with the option's letter from the given choices directly"
MMSTAR_REMOVED = " Please answer yes or no."

# MathVista's and MathVision's extractor few-shot text (mathvista_evals.py / mathvision_evals.py DEMO_PROMPT, identical).
MATHVISTA_EXTRACT_DEMO = """
Please read the following example. Then extract the answer from the model response and type it at the end of the prompt.

Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.
Question: Which number is missing?

Model response: The number missing in the sequence is 14.

Extracted answer: 14

Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.
Question: What is the fraction of females facing the camera?

Model response: The fraction of females facing the camera is 0.6, which means that six out of ten females in the group are facing the camera.

Extracted answer: 0.6

Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.
Question: How much money does Luca need to buy a sour apple candy and a butterscotch candy? (Unit: $)

Model response: Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.

Extracted answer: 1.45

Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.
Question: Between which two years does the line  graph saw its maximum peak?

Model response: The line graph saw its maximum peak between 2007 and 2008.

Extracted answer: [2007, 2008]

Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.
Question: What fraction of the shape is blue?\nChoices:\n(A) 3/11\n(B) 8/11\n(C) 6/11\n(D) 3/5

Model response: The correct answer is (B) 8/11.

Extracted answer: B
"""

# MathVerse step 1, extraction (mathverse_evals.py DEMO_PROMPT_EXTRACT).
MATHVERSE_EXTRACT_DEMO = """
I am providing you a response from a model to a math problem, termed 'Model Response'. You should extract the answer from the response as 'Extracted Answer'. Directly output the extracted answer with no explanation.

1.
Model response: 'Rounded to two decimal places, the perimeter of the sector is approximately:\n\n(-2, 1)'
Extracted Answer: (-2, 1)

2.
Model response: 'at those points.\n\nTherefore, the correct option that represents the meaning of the intersection points of the graphs is:\n\nD. They give the solutions to the equation $f(t)=g(t)$.",'
Extracted Answer: D

3.
Model response: ' at 1 (there's a closed circle at y = 1), the range in interval notation is \\((-4, 1]\\).\n\nFinal values:\nDomain: \\((-3, 3]\\)\nRange: \\((-4, 1]\\)'
Extracted Answer: Domain: \\((-3, 3]\\)\nRange: \\((-4, 1]\\)

4.
Model response: 'As it stands, I cannot provide the correct option letter because there isn't enough information to solve for 'y'.'
Extracted Answer: null

5.
Model response: 'Given that AB = 17.6 meters, we can now substitute into the equation:\n\nd = 17.6 / cos(38\u00b0)\n\nTherefore, to one decimal place, the distance d between Ned and Bart is approximately 22.3 meters.'
Extracted answer: 22.3

6.
Model response:  have all the coefficients for the quadratic function:\n\\( f(x) = ax^2 + bx + c \\)\n\\( f(x) = -1x^2 - 2x + 1 \\)\n\nTherefore, the equation for the graphed function \\( f \\) is:\n\\( f(x) = -x^2 - 2x + 1 \\)"'
Extracted answer: f(x) = -x^2 - 2x + 1

7.
"""

# MathVerse step 2, consistency judgement (DEMO_PROMPT_SCORE; a str.format template: {{3}} renders as {3}).
MATHVERSE_SCORE_DEMO = """
Below are two answers to a math question. Question is [Question], [Standard Answer] is the standard answer to the question, and [Model_answer] is the answer extracted from a model's output to this question.  Determine whether these two answers are consistent.
Please note that only when the [Model_answer] completely matches the [Standard Answer] means they are consistent. For non-multiple-choice questions, if the meaning is expressed in the same way, it is also considered consistent, for example, 0.5m and 50cm.
If they are consistent, Judement is 1; if they are different, Judement is 0.

[Question]: Write the set of numbers represented on the number line in interval notation.
[Standard Answer]: (-2,1]
[Model_answer] : Extracted Answer: \\((-2, 1)\\)
Judgement: 0

[Question]: As shown in the figure, circle O has a radius 1.0, if angle BAC = 60.0, then the length of BC is ()\nChoices:\nA:2\nB:2\u221a{{3}}\nC:\u221a{{3}}\nD:2\u221a{{2}}
[Standard Answer]: C
[Model_answer] : B:2\u221a{{3}}
Judgement: 0

[Question]: Find the domain and range of the function f using interval notation.
[Standard Answer]: domain: [-4, 0) and range: (-3, 1]
[Model_answer] : Range: \\((-4, 1]\\)
Judgement: 0

[Question]: As shown in the figure, circle O has a radius 1.0, if angle BAC = 60.0, then the length of BC is ()\nChoices:\nA:2\nB:2\u221a{{3}}\nC:\u221a{{3}}\nD:2\u221a{{2}}
[Standard Answer]: C
[Model_answer] : null
Judgement: 0

[Question]: Given the graph of the ellipse that intersects with x-axis at 9 and -9 and with y-axis at 3 and -3, determine its equation.A. \\frac{{x^2}}{{81}} + \\frac{{y^2}}{{9}} = 1 B. Can not determine.\n
[Standard Answer]: A
[Model_answer] : \\frac{{x^2}}{{81}} + \\frac{{y^2}}{{9}} = 1
Judgement: 1

[Question]: {question}
[Standard Answer]: {gt}
[Model_answer] : {extraction}
Judgement: """

# MM-Star's option extractor (mmstar/utils.py DEMO_PROMPT; a str.format template): MathVista's few-shot text, then
# the test slot.
MMSTAR_EXTRACT_DEMO = MATHVISTA_EXTRACT_DEMO + (
    "\nHint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.\n"
    "Question: {question}\n\nModel response: {response}\n\nExtracted answer: \n")

# LightEval (the fork's evaluate_text.py, run with --use-chat-template and no system prompt).
LIGHTEVAL_MATH_QUERY = """
Solve the following math problem efficiently and clearly.  The last line of your response should be of the following format: 'Therefore, the final answer is: $\\boxed{{ANSWER}}$. I hope it is correct' (without quotes) where ANSWER is just the final number or expression that solves the problem. Think step by step before answering.

{Question}
""".strip()  # noqa: E501

LIGHTEVAL_GPQA_QUERY = """
Answer the following multiple choice question. The last line of your response should be of the following format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think step by step before answering.

{Question}

A) {A}
B) {B}
C) {C}
D) {D}
""".strip()  # noqa: E501
