"""math-verify in killable worker processes: a hard wall-clock limit per answer, from any thread.

math-verify bounds its own work with ``signal.alarm``: that raises off the main thread (a notebook's helper
thread, a trainer's reward thread) and some inputs run straight through it (Math-Verify issue #65). So every
judgement here runs in a small pool of worker processes that this module starts and owns. A worker that is
still busy when its item's limit passes is killed and replaced; the item is reported as ``"timeout"``. The
caller never waits on math-verify, only on a pipe with a deadline, so the limit holds from the main thread, a
notebook kernel or any other thread. Workers live as long as the process and are reused across calls (starting
one costs ~0.5 s: python, sympy, the LaTeX parser); they exit at interpreter exit or with ``close()``.

    from lmm_r1.verifier import math_equal, judge
    math_equal("$\\frac{1}{2}$", "<answer>$0.5$</answer>")         # True
    judge(["2", "3"], ["... $\\boxed{2}$", "... $4$"])               # [Judgement(True, 'ok', ...), ...]

Workers are plain ``subprocess`` children that load this file by path, not ``multiprocessing`` ones: they do not
re-import the caller's ``__main__`` (a script without a main guard, a notebook), do not import ``lmm_r1`` (and
with it transformers), and a kill is a plain SIGKILL of a direct child. Requests and replies travel as pickles
over the child's stdin and a copy of its stdout; its stdout proper is pointed at stderr, so a stray print in a
library cannot corrupt the stream. A worker dies with its parent even mid-item (Linux: PR_SET_PDEATHSIG;
elsewhere a watchdog thread), so a killed trainer leaves no orphan spinning on a hanging answer.

Throughput: each worker has a few small items queued so it never waits for the parent; a worker keeps to the
items of one gold answer (a GRPO group) and caches the gold's parse, the verdict per (gold, parsed answer) and
16k LaTeX parses instead of math-verify's 20. ``benchmarks/bench_rewards.py`` compares this with plain serial
math-verify.

Extraction follows LMM-R1 (PAPER.md §4): the gold, wrapped as ``$gold$`` unless it starts with ``$``, is parsed
with math-verify's default LaTeX extractor; the **whole** prediction is parsed with the LaTeX extractor,
``\\boxed{}`` first, no un-anchored numbers, normalisation nits/malformed_operators off and basic_latex,
equations, boxed, units on. ``verify_order`` picks math-verify's documented ``verify(gold, prediction)``
("gold_first", the default) or LMM-R1's swapped ``verify(prediction, gold)`` ("upstream"); ``rewards.py``
explains why the default is the documented one.

This module imports only the standard library at the top: the workers load it on their own.
"""

from __future__ import annotations

import atexit
import functools
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Sequence

DEFAULT_TIMEOUT = 3.0  # seconds per item: a normal judgement takes milliseconds; a stuck one stalls a step 3 s
VERIFY_ORDERS = ("gold_first", "upstream")
# Evaluation-protocol rules (lmm_r1/protocol.py) judged in the same workers: ``verify_order`` names one of them.
EVAL_RULES = ("mathvision_fork", "lighteval_math", "olympiadbench_fork")
STATUSES = ("ok", "no_extraction", "unparseable_gold", "timeout", "error")
# Items queued per worker, so it goes on to the next without waiting for the parent to be scheduled (slow on a
# busy machine). Behind a busy worker at most QUEUE_BYTES are queued: a pipe holds 64 KiB, and a send that does
# not fit would block the parent behind a worker that may never read again (a hanging item), past every deadline.
QUEUE_DEPTH = 16  # more gains little; items queued behind a hanging one wait for its limit
QUEUE_BYTES = 32768
STARTUP_TIMEOUT = 120.0  # seconds for a new worker to import math-verify; generous for a loaded 2-core machine
LATEX_CACHE_SIZE = 16384  # LaTeX strings whose sympy form each worker keeps (small expressions: a few MB)
MEMORY_LIMIT_MB = 4096  # address-space cap per worker: a runaway sympy expansion fails there, not in the host


@dataclass(frozen=True)
class Judgement:
    """The verdict on one (gold, prediction) pair.

    ``correct`` is True/False, or None when the gold itself cannot be parsed (nothing to judge against).
    ``status``: "ok" (judged), "no_extraction" (nothing parseable in the prediction: False), "unparseable_gold"
    (None), "timeout" (the worker overran the limit and was killed: False), "error" (math-verify raised or the
    worker died: False). ``seconds`` is the wall time from dispatch to verdict (0 for answers found without a
    worker).
    """

    correct: bool | None
    status: str
    seconds: float = 0.0


def wrap_gold(gold: str) -> str:
    """LMM-R1's gold convention: strip, then ``$gold$`` unless it already starts with ``$``."""
    gold = gold.strip()
    return gold if gold.startswith("$") else f"${gold}$"


# ---- the judgement itself (runs in the workers; also callable in-process, e.g. by a baseline) ----

@functools.cache
def _configs():
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig

    gold = [LatexExtractionConfig()]  # upstream parses the gold with math-verify's defaults
    answer = [LatexExtractionConfig(
        normalization_config=NormalizationConfig(nits=False, malformed_operators=False, basic_latex=True,
                                                 equations=True, boxed="all", units=True),
        boxed_match_priority=0,  # \boxed{} is tried before "final answer is" patterns
        try_extract_without_anchor=False,  # a bare number somewhere in the reasoning does not count
    )]
    return gold, answer


@functools.lru_cache(maxsize=4096)  # a GRPO group shares its gold: parse it once per worker
def _parse_gold(gold: str, math_verify_timeout: int | None):
    from math_verify import parse

    return parse(gold, extraction_config=_configs()[0], extraction_mode="first_match",
                 parsing_timeout=math_verify_timeout)


def judge_one(gold: str, prediction: str, verify_order: str = "gold_first",
              math_verify_timeout: int | None = None) -> tuple[str, bool | None]:
    """Judge one pair in this process: ``(status, correct)`` with LMM-R1's extraction settings.

    ``math_verify_timeout`` is passed to math-verify's own (SIGALRM) timeouts: None in the workers, which are
    killed from outside instead; an int reproduces a plain in-process call (main thread only).
    """
    from math_verify import parse

    gold_parsed = _parse_gold(wrap_gold(gold), math_verify_timeout)
    if not gold_parsed:
        return "unparseable_gold", None
    answer_parsed = parse(prediction, extraction_config=_configs()[1], extraction_mode="first_match",
                          parsing_timeout=math_verify_timeout)
    if not answer_parsed:
        return "no_extraction", False
    try:
        return "ok", _verify(wrap_gold(gold), tuple(answer_parsed), verify_order, math_verify_timeout)
    except Exception:  # verify() catches its own errors; anything that escapes is a judging error, not a pass
        return "error", False


# The verdict depends only on the parsed gold (a function of the gold string) and the parsed answer (sympy
# expressions hash and compare by structure): samples of one group that reach the same answer are verified once.
@functools.lru_cache(maxsize=16384)
def _verify(gold: str, answer_parsed: tuple, verify_order: str, math_verify_timeout: int | None) -> bool:
    from math_verify import verify

    gold_parsed = _parse_gold(gold, math_verify_timeout)
    pair = (gold_parsed, list(answer_parsed))
    if verify_order != "gold_first":
        pair = pair[::-1]
    return bool(verify(*pair, timeout_seconds=math_verify_timeout))


# ---- evaluation rules of the authors' protocol (lmm_r1/protocol.py) ----

def _number(latex: str):
    """``eval(str(latex2sympy(x)))`` of the fork's MathVision ``is_equal`` (``from math import *`` in scope).

    The string evaluated is sympy's printout of a parsed expression, not the model's text, and it is evaluated
    with no builtins in a killable, memory-capped worker; ints stay ints (``2*3`` -> 6), as in the fork."""
    from latex2sympy2_extended import latex2sympy

    return eval(str(latex2sympy(latex)), {"__builtins__": {}}, _math_scope())  # noqa: S307 - see the docstring


@functools.cache
def _math_scope() -> dict:
    import math

    return {k: getattr(math, k) for k in dir(math) if not k.startswith("_")}


def _eval_tuple(s: str) -> str:
    parts = s[1:-1].split(",")
    try:
        if (s[0], s[-1]) in (("(", ")"), ("[", "]")) and len(parts) > 1:
            inner = ",".join(str(round(_number(p), 2)) if "infty" not in p and p not in ("a", "-a") else p
                             for p in parts)
            return f"{s[0]}{inner}{s[-1]}"
    except Exception:  # the fork returns the string unevaluated on any failure
        return s
    return s


def mathvision_is_equal(gold: str, answer: str) -> bool:
    """The fork's MathVision ``is_equal``: lower-case match, tuple evaluation, then numbers equal to 2 decimals."""
    gold, answer = gold.lower(), answer.lower()
    if not gold.replace(" ", "") or not answer.replace(" ", ""):
        return False
    if gold.strip() == answer.strip():
        return True
    gold, answer = _eval_tuple(gold), _eval_tuple(answer)
    if gold == answer:
        return True
    try:
        return round(_number(gold), 2) == round(_number(answer), 2)
    except Exception:
        return False


def lighteval_math(gold_solution: str, response: str) -> tuple[str, bool | None]:
    """LightEval's MATH-500 metric in the fork's ``evaluate_text.py``: gold from the solution's LaTeX, the
    prediction as an expression or LaTeX (boxed first), first-match fallback, equal to 5 digits."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    gold = parse(gold_solution, extraction_config=[LatexExtractionConfig()], fallback_mode="first_match",
                 parsing_timeout=None)
    if not gold:
        return "unparseable_gold", None
    pred = parse(response, extraction_config=[ExprExtractionConfig(), LatexExtractionConfig(boxed_match_priority=0)],
                 fallback_mode="first_match", parsing_timeout=None)
    if not pred:
        return "no_extraction", False
    return "ok", bool(verify(gold, pred, float_rounding=5, timeout_seconds=None))


class OlympiadJudge:
    """The fork's OlympiadBench judger (olympiadbench_evals.py OlympiadBenchEvaluator), rule for rule.

    Its ``parse_latex`` is sympy's ANTLR parser, which needs antlr4 4.11 (the fork's script installed it for this
    benchmark alone); here latex2sympy2_extended's parser, the same grammar's descendant, reads the LaTeX
    (fidelity register: eval_latex2sympy). Exceptions are caught exactly where the fork caught them: a precision
    that is not a number (the rows' ``error`` field as stored) disables the tolerance as it did there.
    """

    SPECIAL = {"\\left": "", "\\right": "", "∶": ":", "，": ",", "$": "", "\\approx": "=", "\\simeq": "=",
               "\\sim": "=", "^\\prime": "'", "^{\\prime}": "'", "^\\circ": "", "%": ""}

    def __init__(self):
        self.pi = self.parse("\\pi")
        self.precision = 1e-8

    @staticmethod
    def parse(latex: str):
        from latex2sympy2_extended import latex2sympy

        return latex2sympy(latex)

    @staticmethod
    def split_by_comma(expr: str) -> list[str]:
        depth, out, start = 0, [], 0
        for i, ch in enumerate(expr):
            if ch in "([":
                depth += 1
            elif ch in ")]":
                depth -= 1
            elif ch == "," and depth == 0:
                out.append(expr[start:i].strip())
                start = i + 1
        if start < len(expr):
            out.append(expr[start:].strip())
        return out

    @staticmethod
    def plus_minus(exprs: list[str]) -> list[str]:
        out = []
        for e in exprs:
            out += [e.replace("\\pm", "+"), e.replace("\\pm", "-")] if "\\pm" in e else [e]
        return out

    def judge(self, expression1: str, expression2: str, precision=1e-8) -> bool:
        import re

        precision = precision if isinstance(precision, list) else [precision]
        try:
            expression1, expression2 = self.preprocess(expression1, expression2)
        except Exception:
            return False
        if expression1 == expression2:
            return True
        expression1 = re.sub(r"[\u4e00-\u9fff]+", "", expression1)
        expression2 = re.sub(r"[\u4e00-\u9fff]+", "", expression2)
        list1 = self.plus_minus(self.split_by_comma(expression1))
        list2 = self.plus_minus(self.split_by_comma(expression2))
        if len(precision) <= 1:
            precision = precision * len(list1)
        if len(list1) != len(list2):
            return False
        idx = -1
        while list1:
            idx = (idx + 1) % len(list1)
            item1 = list1[idx]
            self.precision = precision[idx]
            for item2 in list2:
                if self.is_equal(item1, item2):
                    list1.remove(item1)
                    list2.remove(item2)
                    precision.remove(self.precision)
                    break
            else:
                return False
        return True

    @staticmethod
    def is_interval(expr: str) -> bool:
        return expr.startswith(("(", "[")) and expr.endswith((")", "]"))

    def is_equal(self, e1: str, e2: str) -> bool:
        if e1 == e2 and e1 != "" and e2 != "":
            return True
        if self.is_interval(e1) and self.is_interval(e2):
            try:
                if self.interval_equal(e1, e2):
                    return True
            except Exception:
                return False
        try:
            if self.numerical_equal(e1, e2):
                return True
        except Exception:
            pass
        try:
            if self.expression_equal(e1, e2) and not ("=" in e1 and "=" in e2):
                return True
        except Exception:
            pass
        try:
            if self.equation_equal(e1, e2):
                return True
        except Exception:
            pass
        return False

    def numerical_equal(self, e1: str, e2: str, include_percentage: bool = True) -> bool:
        reference, prediction = float(e1), float(e2)
        candidates = [reference / 100, reference, reference * 100] if include_percentage else [reference]
        return any(abs(c - prediction) <= self.precision * 1.01 for c in candidates)

    def expression_equal(self, exp1: str, exp2: str) -> bool:
        import math

        import sympy as sp

        def rhs(e):
            return (e.split("=")[1] if "=" in e else e).strip()

        s1, s2 = sp.sympify(self.parse(rhs(exp1))), sp.sympify(self.parse(rhs(exp2)))
        if s1 == s2:
            return True
        s1, s2 = s1.subs(self.pi, math.pi), s2.subs(self.pi, math.pi)
        if s1.has(sp.Symbol) != s2.has(sp.Symbol):
            return False
        if not s1.has(sp.Symbol):
            try:
                if not (self.can_compute_power(s1) and self.can_compute_power(s2)):
                    return False
                return bool(abs(s1.evalf() - s2.evalf()) <= self.precision * 1.01)
            except Exception:
                return False
        try:
            return bool(abs(sp.simplify(s1 - s2).evalf()) < 1e-3)
        except Exception:
            return False

    def equation_equal(self, e1: str, e2: str) -> bool:
        import sympy as sp

        def simplified(eq):
            lhs, rhs = eq.split("=")
            return sp.simplify(self.parse(lhs) - self.parse(rhs))

        a, b = simplified(e1), simplified(e2)
        d1, d2 = sp.simplify(a / b), sp.simplify(b / a)
        return bool((d1.is_Integer and d1 != 0) or (d2.is_Integer and d2 != 0))

    def interval_equal(self, e1: str, e2: str) -> bool:
        def same(i1, i2):
            if i1[0] != i2[0] or i1[-1] != i2[-1]:
                return False
            for a, b in zip(i1.strip("[]()").split(","), i2.strip("[]()").split(",")):
                if not self.expression_equal(a, b):
                    return False
            return True

        if e1 == e2:
            return True
        l1, l2 = e1.split("\\cup"), e2.split("\\cup")
        return len(l1) == len(l2) and all(same(a, b) for a, b in zip(l1, l2))

    def preprocess(self, e1: str, e2: str) -> tuple[str, str]:
        import re

        def boxed(latex: str) -> str:
            results = ""
            for m in re.finditer(r"\\boxed{", latex):
                start = end = m.end()
                depth = 1
                while depth > 0 and end < len(latex):
                    depth += {"{": 1, "}": -1}.get(latex[end], 0)
                    end += 1
                if depth != 0:
                    raise ValueError("Mismatched braces in LaTeX string.")
                results += latex[start:end - 1] + ","
            if results == "":
                answers = re.findall(r"\$(.*?)\$", latex.strip().split("\n")[-1])
                results = "".join(a + "," for a in answers) if answers else latex
            return results

        def special(expr: str) -> str:
            if "\\in " in expr:
                expr = expr.split("\\in ")[1]
            for k, v in self.SPECIAL.items():
                expr = expr.replace(k, v)
            expr = expr.strip("\n$,.:;^_=+`!@#$%^&*~，。")
            return re.sub(r"\\(?:mathrm|mathbf)\{~?([^}]*)\}", r"\1", expr)

        return special(boxed(e1)), special(boxed(e2))

    @staticmethod
    def can_compute_power(expr) -> bool:
        import sympy as sp

        if isinstance(expr, sp.Pow):
            base, exp = expr.as_base_exp()
            if base.is_number and exp.is_number:
                return not abs(exp.evalf()) > 1000
            return False
        return True


def judge_rule(gold: str, prediction: str, rule: str) -> tuple[str, bool | None]:
    """One judgement under ``rule``: a training verify order (``judge_one``) or an evaluation rule."""
    if rule in VERIFY_ORDERS:
        return judge_one(gold, prediction, rule)
    if rule == "mathvision_fork":
        import json

        golds = json.loads(gold)  # [the letter or value, the option's text or ""]
        return "ok", any(mathvision_is_equal(g, prediction) for g in golds)
    if rule == "lighteval_math":
        return lighteval_math(gold, prediction)
    if rule == "olympiadbench_fork":
        import json

        answer, precision = json.loads(gold)  # the fork called judge(prediction, final_answer[0], error or 0)
        return "ok", OlympiadJudge().judge(prediction, answer, precision)
    raise ValueError(f"unknown rule {rule!r}")


def _worker_main() -> None:
    """A worker's loop: ``(tag, gold, prediction, order)`` in, ``(tag, status, correct)`` out, until EOF."""
    import logging
    import resource
    import signal

    reply_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints go to stderr, never into the reply stream
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business; it kills us if needed
    limit_mb = int(os.environ.get("LMM_R1_VERIFIER_MEMORY_MB", MEMORY_LIMIT_MB))
    if limit_mb > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit_mb << 20, limit_mb << 20))
    # We disable math-verify's SIGALRM timeouts on purpose (we are killed on overrun): silence its warning.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore")  # "equations=True ... is deprecated": the setting is still LMM-R1's
    requests = Connection(0, writable=False)
    replies = Connection(reply_fd, readable=False)
    _exit_with_parent(int(sys.argv[2]))
    # math-verify memoises LaTeX -> sympy for only 20 strings; answers repeat far more across a batch (a group
    # converging on one answer, small integers everywhere) and the ANTLR parse is most of a judgement's cost.
    from math_verify import parser

    parser.parse_latex_cached = functools.lru_cache(maxsize=LATEX_CACHE_SIZE)(parser.parse_latex_cached.__wrapped__)
    judge_one("1", "$1$")  # load sympy and the LaTeX parser before saying ready: the first item is not slower
    replies.send(("ready", os.getpid()))
    while True:
        try:
            tag, gold, prediction, order = pickle.loads(requests.recv_bytes())
        except EOFError:
            return
        try:
            status, correct = judge_rule(gold, prediction, order)
        except MemoryError:
            status, correct = "error", False
        except Exception:
            status, correct = "error", False
        replies.send((tag, status, correct, time.monotonic()))  # system-wide clock: the parent compares it


def _exit_with_parent(parent: int, poll: float = 0.5) -> None:
    """Die with the parent: a worker deep in a hanging item never reads the EOF that would tell it.

    On Linux the kernel kills the worker (PR_SET_PDEATHSIG), even inside a long C call that holds the GIL; it
    fires when the *thread* that started the worker ends, so the pool starts workers from one long-lived thread
    (``_start_worker``). Elsewhere a watchdog thread polls the parent id.
    """
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before we asked
        os._exit(0)

    def watch():
        while os.getppid() == parent:
            time.sleep(poll)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


# A worker runs this file as a stand-alone module: no ``lmm_r1`` import, no ``__main__`` re-run.
_BOOT = ("import importlib.util, sys; "
         "spec = importlib.util.spec_from_file_location('_lmm_r1_verifier_worker', sys.argv[1]); "
         "m = sys.modules[spec.name] = importlib.util.module_from_spec(spec); "
         "spec.loader.exec_module(m); m._worker_main()")


class _Backlog:
    """Items waiting for a worker, grouped by gold. A worker keeps to one gold's items while there are any: a
    GRPO group shares its gold and often its answers, so the worker's caches (gold, LaTeX) keep hitting."""

    def __init__(self, keys: list[tuple[str, str]]):
        self.keys = keys
        self.groups: dict[str, deque] = {}
        for j, (gold, _) in enumerate(keys):
            self.groups.setdefault(gold, deque()).append(j)

    def __bool__(self) -> bool:
        return bool(self.groups)

    def next_for(self, w: "_Worker") -> int:
        """The item ``w`` should take next (not yet removed): its gold's, else the front of the largest group."""
        if w.gold not in self.groups:
            w.gold = max(self.groups, key=lambda g: len(self.groups[g]))
        return self.groups[w.gold][0]

    def take(self, j: int) -> None:
        gold = self.keys[j][0]
        self.groups[gold].remove(j)
        if not self.groups[gold]:
            del self.groups[gold]

    def put_back(self, items: list[int]) -> None:
        for j in reversed(items):
            self.groups.setdefault(self.keys[j][0], deque()).appendleft(j)


class _Worker:
    def __init__(self):
        self.stderr = tempfile.TemporaryFile()  # read back only if the worker fails to start
        self.proc = subprocess.Popen([sys.executable, "-c", _BOOT, os.path.abspath(__file__), str(os.getpid())],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     close_fds=True)
        # Connection owns (and closes) its fd: hand it duplicates, then close Popen's copies.
        self.requests = Connection(os.dup(self.proc.stdin.fileno()), readable=False)
        self.replies = Connection(os.dup(self.proc.stdout.fileno()), writable=False)
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.ready = False
        self.started = time.monotonic()
        self.jobs: deque = deque()  # (tag, key, sent_at, request bytes) in the order the worker runs them
        self.queued_bytes = 0  # bytes of the requests in ``jobs``: what the pipe may still hold
        self.free_since = 0.0  # when it finished its previous item (the worker's clock: monotonic is system-wide)
        self.gold: str | None = None  # the gold of the group it is working through (see _Backlog)

    def head_start(self) -> float:
        """When the worker began its current item: sent then, or when it finished the one before."""
        return max(self.jobs[0][2], self.free_since)

    def startup_error(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-2000:]

    def kill(self) -> None:
        for conn in (self.requests, self.replies):
            if not conn.closed:
                conn.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.stderr.close()

    def stop(self, grace: float = 1.0) -> None:
        """Close its stdin (it exits at EOF); kill it if it has not gone after ``grace`` seconds."""
        if not self.requests.closed:
            self.requests.close()
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        self.kill()


_keeper: tuple[int, ThreadPoolExecutor] | None = None
_keeper_lock = threading.Lock()


def _start_worker() -> _Worker:
    """Start a worker from one thread that lives as long as the process (see ``_exit_with_parent``): a worker
    started from a caller's short-lived thread would be killed when that thread ends."""
    global _keeper
    with _keeper_lock:
        if _keeper is None or _keeper[0] != os.getpid():  # a forked child needs its own thread
            _keeper = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="lmm_r1-verifier-starter"))
        starter = _keeper[1]
    return starter.submit(_Worker).result()


class VerifierPool:
    """A fixed number of math-verify workers with a per-item wall-clock limit. Thread-safe; calls take turns.

    ``workers`` defaults to the CPUs this process may use (at most 8): judging is CPU-bound and the caller sleeps
    while it runs. Workers start on first use.
    """

    def __init__(self, workers: int | None = None):
        if workers is None:
            workers = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"VerifierPool: workers must be a positive int, got {workers!r}")
        self.size = workers
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._owner = os.getpid()  # a forked child must not drive (or kill) its parent's workers
        self._calls = 0
        self.closed = False
        self.started_workers = 0  # how many were ever started: tests read it to check reuse and replacement

    def _spawn(self) -> _Worker:
        w = _start_worker()
        self.started_workers += 1
        return w

    def _replace(self, w: _Worker) -> None:
        w.kill()
        if not self.closed:  # close() from another thread killed it: nothing to replace
            self._workers[self._workers.index(w)] = self._spawn()

    def judge(self, golds: Sequence[str], predictions: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT,
              verify_order: str = "gold_first") -> list[Judgement]:
        """Judge ``predictions[i]`` against ``golds[i]``; each item gets at most ``timeout`` seconds of a worker.

        Empty golds are "unparseable_gold" without a worker; identical pairs are judged once.
        """
        if len(golds) != len(predictions):
            raise ValueError(f"judge: {len(golds)} golds but {len(predictions)} predictions")
        if verify_order not in VERIFY_ORDERS + EVAL_RULES:
            raise ValueError(f"verify_order must be one of {VERIFY_ORDERS + EVAL_RULES}, got {verify_order!r}")
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        for i, (g, p) in enumerate(zip(golds, predictions)):
            if not isinstance(g, str) or not isinstance(p, str):
                raise TypeError(f"judge: item {i}: gold and prediction must be str, got "
                                f"{type(g).__name__} and {type(p).__name__}")
        results: list[Judgement | None] = [None] * len(golds)
        keys: dict[tuple[str, str], list[int]] = {}
        for i, (g, p) in enumerate(zip(golds, predictions)):
            if not g.strip():
                results[i] = Judgement(None, "unparseable_gold")
            else:
                keys.setdefault((g, p), []).append(i)
        if keys:
            with self._lock:
                verdicts = self._run(list(keys), timeout, verify_order)
            for key, idx in keys.items():
                for i in idx:
                    results[i] = verdicts[key]
        return results  # type: ignore[return-value]

    def _run(self, keys: list[tuple[str, str]], timeout: float, order: str) -> dict:
        if self.closed:
            raise RuntimeError("VerifierPool is closed")
        if os.getpid() != self._owner:
            raise RuntimeError("VerifierPool used from a forked child; create a new pool (or use shared_pool())")
        self._calls += 1
        call = self._calls
        while len(self._workers) < self.size:
            self._workers.append(self._spawn())
        pending = _Backlog(keys)
        requests: dict[int, bytes] = {}  # pickled once, kept while an item waits for an idle worker
        verdicts: dict = {}
        try:
            while pending or any(w.jobs for w in self._workers):
                if self.closed:
                    raise RuntimeError("VerifierPool was closed while judging")
                now = time.monotonic()
                for depth in range(1, QUEUE_DEPTH + 1):  # fill queues breadth-first: idle workers first
                    for w in list(self._workers):
                        if not (w.ready and len(w.jobs) < depth and pending):
                            continue
                        j = pending.next_for(w)
                        if j not in requests:
                            requests[j] = pickle.dumps(((call, j), keys[j][0], keys[j][1], order))
                        if w.jobs and w.queued_bytes + len(requests[j]) > QUEUE_BYTES:
                            continue  # it waits for room, or for an idle worker (which reads it at once)
                        pending.take(j)
                        try:
                            w.requests.send_bytes(requests[j])
                        except OSError:  # died while idle (BrokenPipeError): requeue, replace it
                            pending.put_back([j])
                            self._fail(w, pending, verdicts, None, now)
                            continue
                        w.jobs.append(((call, j), keys[j], now, len(requests[j])))
                        w.queued_bytes += len(requests.pop(j))
                waiting = [w for w in self._workers if w.jobs or not w.ready]
                deadlines = [w.head_start() + timeout for w in waiting if w.jobs]
                deadlines += [w.started + STARTUP_TIMEOUT for w in waiting if not w.ready]
                ready = wait([w.replies for w in waiting], timeout=max(0.0, min(deadlines) - time.monotonic()))
                now = time.monotonic()
                for w in waiting:
                    if w.replies in ready:
                        self._receive(w, pending, verdicts, now)
                        while w.jobs and w in self._workers and w.replies.poll(0):  # drain what else arrived
                            self._receive(w, pending, verdicts, now)
                    elif w.jobs and now >= w.head_start() + timeout:  # overran: kill it, the item is a timeout
                        self._fail(w, pending, verdicts, "timeout", now)
                    elif not w.ready and now >= w.started + STARTUP_TIMEOUT:
                        raise RuntimeError(f"a math-verify worker did not start within {STARTUP_TIMEOUT:.0f} s")
        except BaseException:
            # KeyboardInterrupt or an error: busy workers hold stale jobs; replace them so the pool stays usable.
            for w in list(self._workers):
                if w.jobs:
                    self._replace(w)
            raise
        return verdicts

    def _fail(self, w: _Worker, pending: _Backlog, verdicts: dict, status: str | None, now: float) -> None:
        """Replace ``w``: its current item gets ``status`` (None: none was running); queued ones go back."""
        if w.jobs and status is not None:
            start = w.head_start()
            key = w.jobs.popleft()[1]
            verdicts[key] = Judgement(False, status, now - start)
        pending.put_back([job[0][1] for job in w.jobs])  # not started: judge them elsewhere
        w.jobs.clear()
        w.queued_bytes = 0
        self._replace(w)

    def _receive(self, w: _Worker, pending: _Backlog, verdicts: dict, now: float) -> None:
        try:
            msg = w.replies.recv()
        except (EOFError, OSError, pickle.UnpicklingError):  # the worker died
            if not w.ready:
                code = w.proc.wait()
                if code < 0:  # killed by a signal while starting (OOM killer, a user): start another
                    self._replace(w)
                    return
                err = w.startup_error()  # it exited by itself: a broken install, say; respawning cannot help
                w.kill()
                self._workers.remove(w)
                raise RuntimeError(f"a math-verify worker failed to start (exit code {code}):\n{err}") from None
            self._fail(w, pending, verdicts, "error", now)  # crashed on its current item
            return
        if not w.ready:
            w.ready = msg[0] == "ready"
            return
        tag, status, correct, finished = msg
        if w.jobs and tag == w.jobs[0][0]:
            start = w.head_start()
            _, key, _, size = w.jobs.popleft()
            w.queued_bytes -= size
            verdicts[key] = Judgement(correct, status, max(finished - start, 0.0))
            w.free_since = finished  # it went straight on to the next queued item, if there was one

    def close(self) -> None:
        """Stop every worker (each exits at EOF; killed after a second). Safe to call twice."""
        if os.getpid() != self._owner:
            return
        self.closed = True
        if not self._lock.acquire(timeout=0.5):
            # Another thread is judging (a daemon thread at interpreter exit, say): kill the workers under it;
            # it sees them die and raises instead of starting new ones.
            for w in list(self._workers):
                w.proc.kill()
            return
        try:
            for w in self._workers:  # EOF to all first, so they exit in parallel
                if not w.requests.closed:
                    w.requests.close()
            for w in self._workers:
                w.stop()
            self._workers.clear()
        finally:
            self._lock.release()

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_shared: VerifierPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> VerifierPool:
    """The process-wide pool the rewards and evaluation use (created on first call, closed at exit)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.closed or _shared._owner != os.getpid():
            _shared = VerifierPool()
            atexit.register(_shared.close)
        return _shared


def judge(golds: Sequence[str], predictions: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT,
          verify_order: str = "gold_first", pool: VerifierPool | None = None) -> list[Judgement]:
    """Batch form: one :class:`Judgement` per pair, on ``pool`` (default: the shared pool)."""
    return (pool or shared_pool()).judge(golds, predictions, timeout=timeout, verify_order=verify_order)


def math_equal_batch(golds: Sequence[str], predictions: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT,
                     verify_order: str = "gold_first", pool: VerifierPool | None = None) -> list[bool | None]:
    """``[math_equal(g, p) for g, p in ...]`` in parallel: True/False, None where the gold cannot be parsed."""
    return [j.correct for j in judge(golds, predictions, timeout=timeout, verify_order=verify_order, pool=pool)]


def math_equal(gold: str, prediction: str, timeout: float = DEFAULT_TIMEOUT, verify_order: str = "gold_first",
               pool: VerifierPool | None = None) -> bool | None:
    """Is ``prediction`` (a whole response) equivalent to ``gold``? None when the gold cannot be parsed.

    A prediction that takes longer than ``timeout`` seconds to judge is False.
    """
    return math_equal_batch([gold], [prediction], timeout=timeout, verify_order=verify_order, pool=pool)[0]
