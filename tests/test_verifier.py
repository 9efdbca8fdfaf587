"""The killable math-verify pool: LMM-R1 judgements, a hard per-item limit from any thread, reuse, clean exit.

Expected verdicts follow from PAPER.md §4's settings, not from running the code: the gold is wrapped in ``$``;
the response needs an anchor (the word "answer", e.g. the ``<answer>`` tag, or ``\\boxed{}``) because un-anchored
extraction is off; ``\\boxed{}`` is tried first; malformed LaTeX (``\\frac12``) is not repaired.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from lmm_r1 import verifier
from lmm_r1.verifier import Judgement, VerifierPool, judge, math_equal, wrap_gold

# 9^(9^(9^9)) cannot be evaluated; with math-verify's own timeouts off (as in the workers) comparing it runs for
# minutes (checked by hand: still running after 40 s), so it must be killed at the limit.
HANGING = "<think>big</think><answer>$\\boxed{9^{9^{9^{9}}}}$</answer>"
LIMIT = 1.0  # short, to keep the tests fast; far above a normal judgement (milliseconds)
# Slack for killing and replacing a worker on a loaded 2-core machine.
MARGIN = 1.5


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(workers=2) as p:
        yield p


@pytest.mark.parametrize("gold, response, expected, status", [
    # the <answer> tag is an "answer" anchor; gold "12" is wrapped to "$12$"
    ("12", "<think>3*4=12</think><answer>$12$</answer>", True, "ok"),
    # a fraction and its decimal are numerically equal
    ("$\\frac{1}{2}$", "<answer>$0.5$</answer>", True, "ok"),
    # malformed_operators is off: \frac12 is not repaired, only compared as a string
    ("$\\frac{1}{2}$", "<answer>$\\frac12$</answer>", False, "ok"),
    # a wrong number
    ("$13$", "<answer>$12$</answer>", False, "ok"),
    # no anchor and no \boxed: un-anchored extraction is off, nothing is extracted
    ("$2$", "<think>so it is $2$</think>", False, "no_extraction"),
    # a number without $...$ is not LaTeX
    ("$2$", "<answer>2</answer>", False, "no_extraction"),
    # the whole response is parsed and \boxed{} comes first: a boxed 5 in <think> beats the 7 in <answer>
    ("$5$", "<think>\\boxed{5}</think><answer>$7$</answer>", True, "ok"),
    # units are dropped by normalisation
    ("$5$", "<answer>$5\\text{ cm}$</answer>", True, "ok"),
    # an equation's right-hand side is compared with a number
    ("$2$", "<answer> $x = 2$ </answer>", True, "ok"),
    # option letters parse as symbols
    ("$\\boxed{A}$", "<answer>$A$</answer>", True, "ok"),
    ("B", "<answer>$A$</answer>", False, "ok"),
    # "$$" holds nothing to parse: the gold cannot be judged against
    ("$$", "<answer>$2$</answer>", None, "unparseable_gold"),
    # an empty gold never reaches a worker
    ("  ", "<answer>$2$</answer>", None, "unparseable_gold"),
])
def test_judgements(pool, gold, response, expected, status):
    (j,) = pool.judge([gold], [response])
    assert (j.correct, j.status) == (expected, status)


@pytest.mark.parametrize("gold, response, gold_first, upstream", [
    # math-verify is asymmetric: set-vs-relation is compared only when the (second) argument is a set.
    # documented verify(gold, pred): a gold inequality accepts the interval; the swapped call does not
    ("$1<x<2$", "<answer>$(1,2)$</answer>", True, False),
    # ... and the other way round
    ("$(1,2)$", "<answer>$1<x<2$</answer>", False, True),
    # symmetric cases agree
    ("$\\frac{1}{2}$", "<answer>$0.5$</answer>", True, True),
])
def test_verify_order(pool, gold, response, gold_first, upstream):
    assert math_equal(gold, response, verify_order="gold_first", pool=pool) is gold_first
    assert math_equal(gold, response, verify_order="upstream", pool=pool) is upstream


@pytest.mark.parametrize("gold, wrapped", [
    ("3", "$3$"),  # wrapped
    (" $3$ ", "$3$"),  # already wrapped: only stripped
    ("\\frac{1}{2}", "$\\frac{1}{2}$"),  # LaTeX without dollars
])
def test_wrap_gold(gold, wrapped):
    assert wrap_gold(gold) == wrapped


def test_hanging_input_is_killed_from_a_thread(pool):
    pool.judge(["1"], ["$1$"])  # workers up
    before = pool.started_workers
    out = {}

    def run():
        t = time.monotonic()
        out["verdicts"] = pool.judge(["2", "2"], [HANGING, "<answer>$2$</answer>"], timeout=LIMIT)
        out["seconds"] = time.monotonic() - t

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(LIMIT + 30)
    assert not thread.is_alive(), "judge() from a thread did not return"
    hang, fine = out["verdicts"]
    assert hang.status == "timeout" and hang.correct is False
    assert LIMIT <= hang.seconds < LIMIT + MARGIN  # it really ran to the limit, and no further
    assert out["seconds"] < LIMIT + MARGIN
    assert fine == Judgement(True, "ok", fine.seconds)  # the other item was judged meanwhile
    assert pool.started_workers == before + 1  # exactly the overrunning worker was replaced
    assert pool.judge(["3"], ["<answer>$3$</answer>"])[0].correct is True  # and the pool still works


def test_large_item_behind_a_hanging_one_does_not_block():
    # One worker: the hanging item runs; a 300 kB response (more than a pipe holds) must not be queued behind it,
    # or sending it would block the caller past every deadline.
    big = "<think>" + "why " * 75_000 + "</think><answer>$2$</answer>"
    with VerifierPool(workers=1) as p:
        p.judge(["1"], ["$1$"])
        t = time.monotonic()
        verdicts = p.judge(["2", "2", "2"], [HANGING, big, "<answer>$2$</answer>"], timeout=LIMIT)
        seconds = time.monotonic() - t
    assert [(j.status, j.correct) for j in verdicts] == [("timeout", False), ("ok", True), ("ok", True)]
    assert seconds < LIMIT + 3 * MARGIN  # the limit, a replacement worker's start, two quick items


def test_workers_are_reused_and_replaced_after_a_crash(pool):
    pool.judge(["1"], ["$1$"])
    pids, started = pool.pids(), pool.started_workers
    pool.judge(["1", "2"], ["<answer>$1$</answer>", "<answer>$2$</answer>"])
    assert pool.pids() == pids and pool.started_workers == started  # no new process per call
    pool._workers[0].proc.kill()  # a worker dies while idle (e.g. the OOM killer)
    pool._workers[0].proc.wait()
    verdicts = pool.judge(["1", "2", "3"], ["<answer>$1$</answer>", "<answer>$2$</answer>", "<answer>$3$</answer>"])
    assert [j.correct for j in verdicts] == [True, True, True]
    assert pool.started_workers == started + 1


def test_workers_started_from_a_thread_outlive_it():
    # Workers die with the thread that started them (Linux PR_SET_PDEATHSIG): the pool starts them from its own
    # long-lived thread, so a caller's short-lived thread ending costs nothing.
    with VerifierPool(workers=1) as p:
        thread = threading.Thread(target=p.judge, args=(["1"], ["$\\boxed{1}$"]))
        thread.start()
        thread.join()
        time.sleep(0.3)
        assert p.judge(["2"], ["$\\boxed{2}$"])[0].correct is True
        assert p.started_workers == 1


def test_duplicates_are_judged_once_and_keep_their_places(pool):
    golds = ["2", "3", "2", "3"]
    preds = ["<answer>$2$</answer>", "<answer>$2$</answer>", "<answer>$2$</answer>", "<answer>$3$</answer>"]
    assert [j.correct for j in pool.judge(golds, preds)] == [True, False, True, True]


@pytest.mark.parametrize("golds, preds, kwargs, error", [
    (["1"], [], {}, "1 golds but 0 predictions"),  # lengths differ
    (["1"], ["$1$"], {"verify_order": "sideways"}, "verify_order"),  # unknown order
    (["1"], ["$1$"], {"timeout": 0}, "timeout"),  # no time at all
    ([1], ["$1$"], {}, "item 0"),  # not a string
])
def test_bad_arguments_name_the_problem(pool, golds, preds, kwargs, error):
    with pytest.raises((ValueError, TypeError), match=error):
        pool.judge(golds, preds, **kwargs)


def test_shared_pool_and_module_functions():
    assert verifier.shared_pool() is verifier.shared_pool()
    assert verifier.math_equal_batch(["2", "$$"], ["\\boxed{2}", "\\boxed{2}"]) == [True, None]
    assert [j.status for j in judge(["2"], ["nothing here"])] == ["no_extraction"]


# Loads the module on its own (as the workers do) to skip importing transformers with lmm_r1, judges once, then
# leaves a daemon thread stuck on a hanging item with a 60 s limit while the interpreter exits.
_EXIT_SCRIPT = """
import importlib.util, sys, threading, time
spec = importlib.util.spec_from_file_location("v", sys.argv[1])
v = sys.modules["v"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(v)
assert v.math_equal("2", "<answer>$2$</answer>")
threading.Thread(target=v.math_equal, args=("2", sys.argv[2]), kwargs={"timeout": 60}, daemon=True).start()
time.sleep(0.5)
print(*v.shared_pool().pids())
"""


def test_workers_exit_with_the_interpreter_even_mid_judgement():
    t = time.monotonic()
    out = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, verifier.__file__, HANGING],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - t < 30  # exit did not wait for the 60 s limit
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) >= 1
    time.sleep(0.5)
    for pid in pids:
        status = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
        assert status in ("", "Z"), f"worker {pid} still running after the interpreter exited"


# The parent dies abruptly (SIGKILL: no atexit, no EOF read) while its worker is deep in a hanging item.
_KILLED_PARENT = """
import importlib.util, os, signal, sys, threading, time
spec = importlib.util.spec_from_file_location("v", sys.argv[1])
v = sys.modules["v"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(v)
pool = v.VerifierPool(workers=1)
pool.judge(["1"], ["$1$"])
print(*pool.pids(), flush=True)
threading.Thread(target=pool.judge, args=(["2"], [sys.argv[2]]), kwargs={"timeout": 60}, daemon=True).start()
time.sleep(0.5)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_orphaned_worker_exits_when_the_parent_is_killed():
    out = subprocess.run([sys.executable, "-c", _KILLED_PARENT, verifier.__file__, HANGING],
                         capture_output=True, text=True, timeout=120)
    (pid,) = [int(p) for p in out.stdout.split()]
    for _ in range(50):  # the worker checks its parent every 0.5 s
        state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
        if state in ("", "Z"):
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        pytest.fail(f"worker {pid} still running 5 s after its parent was killed")


def test_closed_pool_refuses_work():
    p = VerifierPool(workers=1)
    assert p.judge(["1"], ["$\\boxed{1}$"])[0].correct is True
    procs = [w.proc for w in p._workers]
    p.close()
    assert all(proc.poll() is not None for proc in procs)
    with pytest.raises(RuntimeError, match="closed"):
        p.judge(["1"], ["$1$"])
