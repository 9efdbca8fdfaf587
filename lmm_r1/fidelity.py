"""The fidelity register: every known departure of the kit from the paper (arXiv 2503.07536) and its released code
(TideDra/lmm-r1 at the paper-time commit dd143ad, OpenRLHF underneath), in one machine-readable table.

    from lmm_r1.fidelity import REGISTER, for_config, markdown
    print(markdown())                    # the table the README shows (a test keeps the two equal)
    for_config(cfg)                      # what a run used for each entry: written into every metrics.json

Each entry says what upstream does (with the file that shows it), what the kit does, which config field or
option selects each behaviour, and the default under ``follows="paper"`` and ``follows="scripts"``. Entries
whose upstream behaviour the kit cannot run yet say so (``implemented=False``); they are departures every run
makes, and the run record lists them too. ``lmm-r1 train --dry-run`` prints the register with the run's values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UPSTREAM = "TideDra/lmm-r1@dd143ad"
PAPER_MATH_VERIFY = "0.5.2"  # the reward server's math-verify at the paper's time


@dataclass(frozen=True)
class Departure:
    key: str
    """Short id, used in run records."""
    topic: str
    upstream: str
    """What the paper or its code does, and where that is written."""
    kit: str
    """What the kit does instead (or as well), and where."""
    option: str
    """The config field (``StageConfig``) or option that selects between them; "" when nothing does."""
    paper: str
    """The paper presets' value under ``follows="paper"``."""
    scripts: str
    """The paper presets' value under ``follows="scripts"``."""
    implemented: bool = True
    """False: the upstream behaviour cannot be selected yet; every run departs here."""
    stages: tuple[str, ...] = ()
    """The stages the entry concerns (empty: every stage)."""
    attr: str = ""
    """The config field or property whose value a run record shows (default: ``option`` when it is one field)."""


REGISTER: tuple[Departure, ...] = (
    Departure(
        "updates_per_rollout", "optimizer steps per rollout",
        "rollout_batch_size counts prompts, train_batch_size samples: 128 or 256 prompts x 16 samples / 128 or 256 "
        "= 16 shuffled mini-batch steps per rollout, max_epochs 1, so the 0.2 clip acts from the second "
        f"({UPSTREAM} ppo_actor.py, ppo_trainer.py; every train_*.sh)",
        "TRL steps_per_generation = 16 x gradient accumulation: the rollout is buffered, shuffled and split into 16 "
        "optimizer steps with old log-probs (tiny presets: 1)",
        "updates_per_rollout", "16", "16"),
    Departure(
        "loss_type", "policy-loss aggregation",
        f"token mean within each sequence, then mean over sequences ({UPSTREAM} openrlhf/models/loss.py PolicyLoss; "
        "token-level means arrived after the paper)",
        "TRL loss_type='grpo' is that aggregation; 'dapo', 'bnpo', 'dr_grpo' selectable",
        "loss_type", "grpo", "grpo"),
    Departure(
        "advantage_estimator", "advantage estimator (FRE-Text, FRE-Multi, MGT-PerceReason)",
        "REINFORCE++-baseline: reward minus the group mean (no std), k1 KL added to the token rewards, returns "
        f"summed with gamma 1, advantages whitened over every token of the rollout ({UPSTREAM} experience_maker.py, "
        "replay_buffer.py normalize; train_fre_text.sh, train_fre_multi.sh, train_mgt_percereas.sh: "
        "--advantage_estimator reinforce_baseline). The paper's text draws PPO with GAE and its table lists a critic "
        "lr for FRE too: the kit follows the scripts under both columns",
        "algorithm='reinforce_pp_baseline': the same estimator in lmm_r1.trainer (a GRPOTrainer subclass); "
        "'ppo_gae' (the paper text's PPO), TRL's 'trl_batch_std' (group mean / batch std, KL in the loss), 'grpo', "
        "'dr_grpo' selectable",
        "algorithm", "reinforce_pp_baseline", "reinforce_pp_baseline",
        stages=("fre_text", "fre_multi", "mgt_percept", "direct_rl_percept")),
    Departure(
        "ppo_gae", "PPO with GAE and a critic (MGT-Geo, Direct-RL-Geo, both Sokoban runs)",
        "a critic initialised from the actor's starting checkpoint (backbone + bias-free value head, N(0, 1/(H+1))), "
        "its own Adam at lr 9e-6 (Geo, the default) / 5e-6 (Sokoban), cosine to 0.1x after 3% warm-up, value clip "
        "0.2; the raw reward (no group mean) clipped on the last token, k1 KL per token, GAE with gamma = lambda = 1, "
        f"advantages whitened over the rollout, returns not ({UPSTREAM} train_mgt_geo.sh, train_direct_rl_geo.sh, "
        "train_sokoban.sh: --advantage_estimator gae; openrlhf/models/model.py, ppo_critic.py, experience_maker.py)",
        "algorithm='ppo_gae' (lmm_r1.trainer, lmm_r1.critic): the same; the critic steps once per actor step; "
        "'reinforce_pp_baseline' (the kit's earlier stand-in, a group baseline) selectable. Under DeepSpeed the "
        "critic's second engine has not run on a GPU yet (scripts/gpu_check.sh checks it)",
        "algorithm, critic_learning_rate, gae_gamma, gae_lambda, value_clip", "ppo_gae", "ppo_gae",
        stages=("mgt_geometry", "direct_rl_geometry", "mgt_sokoban", "direct_rl_sokoban"), attr="algorithm"),
    Departure(
        "kl_placement", "KL term",
        f"k1 estimate log(pi/pi_ref) folded into the token reward, fixed coefficient 1e-3 (0 for Sokoban) ({UPSTREAM} "
        "models/utils.py compute_reward)",
        "with algorithm='reinforce_pp_baseline', the same (in the advantages); with TRL's estimators, k3 in the "
        "loss, weighted by the ratio",
        "algorithm, beta", "k1 in the reward", "k1 in the reward", attr="kl_placement"),
    Departure(
        "vllm_is_correction", "vLLM importance-sampling correction",
        "none: OpenRLHF recomputes the behaviour log-probs with the actor and applies no vLLM-vs-actor weight",
        "TRL 1.16 defaults to a sequence-level mask at ratio 3; the kit passes it explicitly, off by default",
        "vllm_importance_sampling", "off", "off"),
    Departure(
        "reward_semantics", "reward edge cases",
        f"math: verify(answer, gold), unparseable gold 1.0, a verify exception 1.0; Sokoban: task term from 0, "
        "action shaping over every action, repetition on the move list sets the action bonus to min(0, bonus - "
        f"0.2), thinking words split on single spaces, total clipped to [-10, 10] ({UPSTREAM} math_verifier.py, "
        "sokoban_verifier.py; train_ppo_ray.py reward_clip_range)",
        "reward_semantics='kit': math-verify's documented verify(gold, answer), unparseable gold excluded "
        "(None, counted), exceptions 0.0; Sokoban n capped at 50, repetition in the thinking, no clip",
        "reward_semantics", "upstream", "upstream"),
    Departure(
        "verifier_timeout", "stuck math-verify judgements",
        "math-verify's own SIGALRM timeouts inside the reward server's threads (which some inputs run through)",
        "each judgement runs in a killable worker process; past verify_timeout seconds it is killed and scores 0.0",
        "verify_timeout", "3.0", "3.0"),
    Departure(
        "math_verify_version", "math-verify version",
        "math-verify 0.5.2 (upstream requirements at the paper's time)",
        "math-verify 0.9.0 (the version TRL 1.16's stack installs); boxed='all' is 0.9's spelling of boxed=True",
        "", "0.9.0", "0.9.0", implemented=False),
    Departure(
        "mgt_percept_scripts", "MGT-PerceReason in the released script",
        f"KL coefficient 0.0 and generate_max_len 8000 ({UPSTREAM} train_mgt_percereas.sh); at 9cb1513 the same "
        "script starts from lmm-r1-mgt-geo/, not lmm-r1-fre-text/ (the paper: from FRE-Text)",
        "follows='scripts' uses 0.0 and 8000; both columns start from fre_text (set init_from=mgt_geometry for "
        "9cb1513's chaining)",
        "follows, init_from", "beta 1e-3, 8192 tokens", "beta 0.0, 8000 tokens", stages=("mgt_percept",),
        attr="init_from"),
    Departure(
        "direct_rl_geo_data", "Direct-RL-Geo training data",
        f"./data/MathV360k/geo_split.jsonl ({UPSTREAM} train_direct_rl_geo.sh), never released",
        "VerMulti-Geo (mathv_geo_message.jsonl), the MGT-Geo data the paper names for the domain",
        "dataset", "vermulti_geo", "vermulti_geo", implemented=False, stages=("direct_rl_geometry",)),
    Departure(
        "normalize_reward", "reward normalisation (--normalize_reward)",
        f"--normalize_reward in every {UPSTREAM} train_*.sh; there it only maps a reward model's or critic's output "
        "through (x - mean) / std with buffers 0 and 1 unless the checkpoint's config.json holds mean and std, "
        "which an actor checkpoint does not (openrlhf/models/model.py); the rule-based rewards never pass through it",
        "nothing to do: the flag changes no reward and no value at the paper's commit (read 2026-12-07; an earlier "
        "register entry said running statistics scaled the Sokoban rewards, which the code does not do)",
        "", "none", "none", implemented=True),
    Departure(
        "sokoban_levels", "Sokoban training levels",
        "11,500 gym-sokoban levels (5,000 small-v0, 5,000 small-v1, 500 each v0, v1, large-v0), first frames resized "
        f"to 640 px high, made with unseeded generators ({UPSTREAM} examples/data/gen_sokoban_tasks.py)",
        "the same gym-sokoban calls and mix (lmm_r1.sokoban_levels), Python's and NumPy's generators seeded per level "
        "from the stage's seed, so a seed names one level set; dataset=None trains on the toy rooms instead",
        "dataset, seed", "sokoban_levels", "sokoban_levels", stages=("mgt_sokoban", "direct_rl_sokoban"),
        attr="dataset"),
    Departure(
        "system_prompt_in_data", "system turns in the training records",
        "records are used as written",
        "the stage's system prompt replaces any system turn of a record (lmm_r1.data)",
        "system_prompt", "r1 / sokoban", "r1 / sokoban", implemented=False),
)


# Evaluation under the authors' protocol (lmm_r1.protocol, lmm-r1 eval --protocol fork): where the kit cannot do
# exactly what their lmms-eval fork and LightEval run did. Every evaluation run record lists these.
EVAL_FORK = "ForJadeForest/lmm-r1-eval"
EVAL_REGISTER: tuple[Departure, ...] = (
    Departure(
        "gpqa_option_order", "GPQA-Diamond option order",
        f"gold_index = random.randint(0, 3) from Python's unseeded generator ({EVAL_FORK} evaluate_text.py "
        "gpqa_prompt_fn): each run asked a different order",
        "the same draw from a generator seeded with the question's record id: one fixed order per question",
        "", "seeded", "seeded", implemented=False),
    Departure(
        "judge_failures", "failed judge calls",
        f"retried, then scored as \"\" (MathVista/MathVision) or \"0\" (MathVerse on HTTP 400) ({EVAL_FORK} "
        "*_evals.py get_chat_response)",
        "a failing judge stops the evaluation (JudgeUnavailable); no row is scored by an error",
        "", "stop", "stop", implemented=False),
    Departure(
        "judge_model_name", "judge model per benchmark",
        f"one server (Qwen2.5-14B-Instruct served as gpt-3.5-turbo, miscs/lmmr1/deploy_eval_model.sh); MathVision's "
        "yaml asks for model ckpts/Qwen2.5-7B-Instruct, which that server does not serve",
        "one judge (lmm-r1 eval --judge-url, --judge-model) for every benchmark",
        "", "Qwen/Qwen2.5-14B-Instruct", "Qwen/Qwen2.5-14B-Instruct"),
    Departure(
        "eval_latex2sympy", "MathVision's LaTeX evaluation",
        f"latex2sympy2 (then eval of its printout with math's names) ({EVAL_FORK} tasks/mathvision/utils.py)",
        "latex2sympy2_extended 1.11 (math-verify's), the same printout evaluated with no builtins in a killable "
        "worker",
        "", "latex2sympy2_extended", "latex2sympy2_extended", implemented=False),
    Departure(
        "lighteval_version", "LightEval's extraction",
        "lighteval at commit ed08481 (eval_text_benchmark.sh), its math-verify of that time",
        "LightEval 0.13.0's index regexes (read from its wheel; it does not install beside the pins) and "
        "math-verify 0.9.0's parse/verify for MATH-500",
        "", "0.13.0 rules", "0.13.0 rules", implemented=False),
    Departure(
        "magebench_sampling", "MageBench decoding",
        "main.py defaults: temperature 0.1, top_p 0.95, frequency_penalty 1.0, 4000 tokens (the paper does not say "
        "what it used for Table 3)",
        "greedy decoding with the run's --max-new-tokens, as for every other benchmark",
        "", "greedy", "greedy", implemented=False),
    Departure(
        "football_frames", "Football frames",
        "gfootball's frames through MageBench's HARDCODE_IMAGE_AUGMENTATION (brightness 1.5, contrast 0.6, "
        "brightness 1.2), which its comment says compensates GL stacks with colour problems",
        "Mesa's 8-bit EGL configs (allow_rgb10_configs=false: true colours on llvmpipe) and no augmentation; "
        "lmm_r1.football.FootballGame(augment_frames=True) applies MageBench's",
        "", "no augmentation", "no augmentation"),
    Departure(
        "olympiadbench_parser", "OlympiadBench's LaTeX parser",
        f"sympy's ANTLR parse_latex, with antlr4 4.11 installed for this benchmark alone ({EVAL_FORK} "
        "olympiadbench_evals.py, miscs/lmmr1/eval_mm_benchmark.sh)",
        "the same judger's rules with latex2sympy2_extended's parser (antlr4 4.13, which math-verify needs; sympy's "
        "parser refuses it): inputs such as \\frac12 without braces may parse differently",
        "", "latex2sympy2_extended", "latex2sympy2_extended", implemented=False),
)


def for_eval(protocol: str) -> list[dict[str, Any]]:
    """The evaluation entries, as an evaluation run record lists them."""
    return [{"key": e.key, "protocol": protocol, "kit": e.kit, "implemented": e.implemented}
            for e in EVAL_REGISTER] if protocol == "fork" else []


def _run_value(entry: Departure, cfg) -> Any:
    """What a run used for an entry: its config field's value, or the fixed value where nothing selects it."""
    attr = entry.attr or (entry.option if entry.option and "," not in entry.option else "")
    if attr and hasattr(cfg, attr):
        return getattr(cfg, attr)
    return entry.paper if cfg.follows == "paper" else entry.scripts


def for_config(cfg) -> list[dict[str, Any]]:
    """The entries that concern ``cfg``'s stage, with the run's value and the paper preset's (for the record)."""
    out = []
    for entry in REGISTER:
        if entry.stages and cfg.stage not in entry.stages:
            continue
        out.append({"key": entry.key, "option": entry.option, "run": _run_value(entry, cfg),
                    "paper_preset": entry.paper if cfg.follows == "paper" else entry.scripts,
                    "implemented": entry.implemented})
    return out


def markdown() -> str:
    """The register as the README's markdown table."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| topic | upstream (paper, released code) | the kit | option | follows=paper | follows=scripts |",
             "|---|---|---|---|---|---|"]
    for e in REGISTER + EVAL_REGISTER:
        kit = e.kit + ("" if e.implemented else " **(upstream not selectable)**")
        lines.append(f"| {cell(e.topic)} | {cell(e.upstream)} | {cell(kit)} | {cell(e.option) or '—'} | "
                     f"{cell(e.paper)} | {cell(e.scripts)} |")
    return "\n".join(lines) + "\n"

