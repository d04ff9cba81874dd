"""No silent wrong answer: each failure a user can cause is one line with its documented exit code, and
nothing already on disk changes. One table; each row is a CLI call (or API call), the expected exit code,
a fragment of the message, and the files that must stay as they were."""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_cli

import jaxmech as jm

ROOT = Path(__file__).resolve().parents[1]
TRADE = ROOT / "configs/bilateral_trade.toml"
SMALL = ("--set", "audit.profiles=2000", "--set", "audit.misreports.grid=8", "--set", "audit.misreports.random=0")

USER = '''
import jax.numpy as jnp

def values_key(s):
    return {}["missing"]

def values_value(s):
    raise ValueError("my values need three agents")

def values_huge(s):
    return 1e20 * jnp.stack([s[0] + 0.5 * s[1], s[1] + 0.5 * s[0]])

def decide(params, m):
    return (m[0] >= m[1]).astype(m.dtype)

def decide_nan(params, m):
    return jnp.where(m[1] > 0.9, jnp.nan, (m[0] >= m[1]).astype(m.dtype))

def pay_nan(params, m):
    q = (m[0] >= m[1]).astype(m.dtype)
    return jnp.where(m[0] > 0.9, jnp.nan, q * 0.5) * jnp.ones(2, m.dtype)
'''


def _custom(tmp: Path, values: str = "linear", decide: str | None = None, pay: str | None = None) -> Path:
    (tmp / "user.py").write_text(USER)
    lines = ['name = "custom"', "[environment]", 'kind = "bilateral_trade"']
    lines.append(f'values = "{tmp / "user.py"}:{values}"' if values != "linear" else 'values = "linear"')
    if decide is None:
        lines += ["[mechanism]", 'kind = "generalized_vcg"']
    elif pay is None:
        lines += ["[mechanism]", 'kind = "pivot"', f'decide = "{tmp / "user.py"}:{decide}"']
    else:
        lines += ["[mechanism]", 'kind = "custom"', f'decide = "{tmp / "user.py"}:{decide}"', f'pay = "{tmp / "user.py"}:{pay}"']
    path = tmp / f"c-{values}-{decide}-{pay}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".lock")
    }


def _prior_run(tmp: Path) -> Path:
    out = tmp / "done"
    assert run_cli(["run", str(TRADE), "--out", str(out), *SMALL]) == 0
    return out


def _held(tmp: Path):
    """A folder whose lock another holder has (a second open file description of the lock file)."""
    out = tmp / "busy"
    out.mkdir()
    lock = out / ".lock-0"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b"pid 4242 on testhost since today")
    return out, fd


def _damaged(tmp: Path, how: str) -> Path:
    out = tmp / f"ck-{how}"
    (out / "checkpoint").mkdir(parents=True)
    path = out / "checkpoint" / "process-0.npz"
    if how == "garbage":
        path.write_bytes(b"not a zip file at all")
    elif how == "truncated":
        np.savez(path, meta=np.asarray('{"next_block": 3}'), x=np.arange(1000.0))
        path.write_bytes(path.read_bytes()[:300])
    else:  # a readable file without the run's metadata
        np.savez(path, meta=np.asarray('{"x": 1}'))
    return out


# (id, setup(tmp) -> (argv, folder whose files must not change), exit code, message fragment)
ROWS = [
    ("existing-run", lambda t: (["run", str(TRADE), "--out", str(_prior_run(t)), *SMALL], t / "done"),
     2, "already holds a run (metrics.json): choose another --out, add --overwrite"),
    ("out-is-file", lambda t: ((t / "f").write_text("x") and None) or (["run", str(TRADE), "--out", str(t / "f")], t),
     2, "is a file, not a folder"),
    ("out-under-file", lambda t: ((t / "f").write_text("x") and None) or (["run", str(TRADE), "--out", str(t / "f/sub")], t),
     2, "cannot write results to"),
    ("out-too-long", lambda t: (["run", str(TRADE), "--out", str(t / ("x" * 300))], t), 2, "File name too long"),
    ("name-escapes", lambda t: (["run", str(TRADE), "--set", 'name="../../escape"'], t), 2, "a run name is one folder name"),
    ("folder-in-use", lambda t: (["run", str(TRADE), "--out", str(_held(t)[0]), "--overwrite", *SMALL], t),
     2, "is in use by pid 4242 on testhost"),
    ("resume-in-use", lambda t: (["run", "--resume", str(_held(t)[0])], t), 2, "is in use by pid 4242"),
    ("resume-no-folder", lambda t: (["run", "--resume", str(t / "nothing")], t), 2, "no such folder"),
    ("checkpoint-garbage", lambda t: (["run", "--resume", str(_damaged(t, "garbage"))], t),
     2, "is damaged (not an .npz archive: truncated or overwritten): delete it and rerun"),
    ("checkpoint-truncated", lambda t: (["run", "--resume", str(_damaged(t, "truncated"))], t), 2, "is damaged"),
    ("checkpoint-no-meta", lambda t: (["run", "--resume", str(_damaged(t, "meta"))], t), 2, "is damaged (KeyError"),
    ("reproduce-out-file", lambda t: ((t / "f").write_text("x") and None)
     or (["reproduce", "--quick", "--only", "bilateral_trade", "--out", str(t / "f")], t), 2, "is a file"),
    ("user-keyerror", lambda t: (["run", str(_custom(t, "values_key")), "--out", str(t / "o")], t),
     2, "environment.values = '" ),
    ("user-valueerror", lambda t: (["run", str(_custom(t, "values_value")), "--out", str(t / "o")], t),
     2, "raised ValueError: my values need three agents"),
    ("nan-payments", lambda t: (["run", str(_custom(t, decide="decide", pay="pay_nan")), "--out", str(t / "o"), *SMALL], t),
     3, "non-finite numbers (NaN or inf)"),
    ("nan-decision", lambda t: (["run", str(_custom(t, decide="decide_nan", pay="pay_nan")), "--out", str(t / "o"), *SMALL], t),
     3, "decision"),
    ("overflow", lambda t: (["run", str(_custom(t, "values_huge", decide="decide")), "--out", str(t / "o"), *SMALL], t),
     3, "overflowed (finite values too large for the working precision)"),
    ("one-profile", lambda t: (["run", str(TRADE), "--out", str(t / "o"), "--set", "audit.profiles=1"], t),
     2, "audit.profiles: must be >= 2"),
    ("absurd-profiles", lambda t: (["run", str(TRADE), "--out", str(t / "o"), "--set", "audit.profiles=1e30"], t),
     2, "is more than 2^53 (9.0e+15); at 1e9 profiles/s it would take 3.2e+13 years"),
    ("non-integral-profiles", lambda t: (["run", str(TRADE), "--out", str(t / "o"), "--set", "audit.profiles=1.5"], t),
     2, "audit.profiles: expected an integer, got 1.5"),
    ("seed-beyond-32-bits", lambda t: (["run", str(TRADE), "--out", str(t / "o"), "--set", "seed=4294967296"], t),
     2, "seed: must be <= 4294967295"),
    ("copula-rho-1", lambda t: (["run", str(TRADE), "--out", str(t / "o"), "--set", "prior.rho=1.0"], t),
     2, "prior.rho = 1 makes the signals identical"),
    ("config-not-utf8", lambda t: ((t / "bad.toml").write_bytes(b'name = "caf\xe9"\n') and None)
     or (["run", str(t / "bad.toml"), "--out", str(t / "o")], t), 2, "is not UTF-8 text"),
    ("bench-profiles-negative", lambda t: (["bench", "--profiles", "-5"], t), 2, "--profiles must be >= 1, got -5"),
    ("bench-repeats-0", lambda t: (["bench", "--repeats", "0"], t), 2, "--repeats must be >= 1, got 0"),
    ("bench-json-folder", lambda t: (["bench", "--quick", "--json", str(t)], t), 2, "is a folder, not a file"),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_failure_is_one_line_with_its_exit_code(row, tmp_path, capsys):
    _, setup, code, fragment = row
    argv, keep = setup(tmp_path)
    capsys.readouterr()
    before = _snapshot(keep)
    assert run_cli(argv) == code
    err = capsys.readouterr().err.strip()
    assert fragment in err, err
    assert len(err.splitlines()) == 1 and err.startswith("jaxmech: "), err
    assert _snapshot(keep) == before  # nothing that was on disk changed
    assert not (tmp_path / "o").exists()  # a refused run writes nothing


def test_user_keyerror_names_the_function_and_the_key(tmp_path, capsys):
    assert run_cli(["run", str(_custom(tmp_path, "values_key")), "--out", str(tmp_path / "o")]) == 2
    assert "user.py:values_key' raised KeyError: 'missing'" in capsys.readouterr().err


def test_overwrite_replaces_a_run_atomically(tmp_path, capsys):
    out = _prior_run(tmp_path)
    before = (out / "metrics.json").read_text()
    assert run_cli(["run", str(TRADE), "--out", str(out), "--overwrite", *SMALL, "--set", "audit.profiles=3000"]) == 0
    after = (out / "metrics.json").read_text()
    assert after != before and '"profiles": 3000' in after
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging, temp or lock file left


def test_sigint_says_how_to_resume(tmp_path):
    """Ctrl-C in a long audit: exit 130, one line with the resume command; the checkpoint is kept."""
    out = tmp_path / "long"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxmech", "run", str(TRADE), "--out", str(out), "--checkpoint-every", "0",
         "--set", "audit.profiles=1000000000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    ck = out / "checkpoint" / "process-0.npz"
    # The loop ends as soon as the first checkpoint lands (seconds on an idle machine); the generous
    # limits only matter on a heavily loaded CI host, where import + compile once took over 120 s.
    try:
        deadline = time.time() + 600
        while not ck.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert ck.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint in 600 s"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert err.strip() == f"jaxmech: interrupted: resume with: jaxmech run --resume {out}"
    assert ck.exists() and not (out / "metrics.json").exists()


# --------------------------------------------------------------------------
# the API: one source of truth per mechanism, non-finite is an error


def _trade():
    env = jm.bilateral_trade(jm.linear_trade_values(a=0.5))
    return env, jm.generalized_vcg(env), jm.independent(env.dims)


def _fee_on_trade(env, mech, fee=0.01):
    def pay(p, m):
        return mech.pay(p, m) + jnp.asarray([fee, 0.0], m.dtype) * env.outcome_probs(mech.decide(p, m))[1]

    return pay


def test_replaced_payments_are_audited_with_the_new_payments(key):
    """A fee of 0.01 on the buyer when trade happens: the buyer just above the cutoff regrets trading, by at
    most 0.01. Closed form for v_i = s_i + a s_-i, uniform signals (CE Sec. 4.4): the buyer's pivot is
    g = s_s, so trading is worth V_b(s) - V_b(g, s_s) - fee = s_b - s_s - fee, and the buyer regrets on
    P(0 <= s_b - s_s < fee) = d - d^2 / 2, d = 0.01 (the stale menu reported 0.497)."""
    env, mech, prior = _trade()
    fee = mech._replace(pay=_fee_on_trade(env, mech))
    assert fee.menu is None and fee.decide_and_pay is None and fee.kinks is mech.kinks
    rep = jm.audit(env, fee, prior, key=key, n_profiles=40_000).report
    d = 0.01
    share = d - d * d / 2
    p = rep["regret"][0]["p_above_tol"]
    assert abs(p["p"] - share) <= 4 * p["se"], (p, share)
    assert 0.009 < rep["regret"][0]["max"] <= 0.01 + 1e-6
    assert rep["regret"][1]["max"] < 1e-5  # the seller pays nothing new


def test_a_menu_that_disagrees_with_pay_is_an_error_naming_the_profile(key):
    env, mech, prior = _trade()
    stale = jm.Mechanism(mech.name, mech.decide, _fee_on_trade(env, mech, 0.05), mech.params, mech.kinks, mech.menu)
    with pytest.raises(jm.AuditError, match=r"menu disagrees with its decide / pay for buyer.*profile #\d+ = \[") as e:
        jm.audit(env, stale, prior, key=key, n_profiles=4096)
    gap = e.value.result.report["integrity"]["menu_gap"][0]
    assert gap["count"] > 0 and abs(gap["max"] - 0.05) < 1e-5


def test_replacing_kinks_drops_the_kinks_a_menu_carries(key):
    env, mech, _ = _trade()
    moved = mech._replace(kinks=lambda p, m, i: jnp.full((1, 1), 0.123, m.dtype))
    s = jnp.asarray([0.7, 0.2], jnp.float32)
    assert hasattr(mech.menu(mech.params, s, 0), "kinks")  # the original menu carries its pivot as a kink
    respond = moved.menu(moved.params, s, 0)
    assert not hasattr(respond, "kinks")
    np.testing.assert_allclose(jm.menu_kinks(moved, respond, moved.params, s, 0), [[0.123]])


def test_nan_payments_raise_with_counts_and_first_profile(key):
    env, mech, prior = _trade()
    nan_pay = mech._replace(pay=lambda p, m: jnp.where(m[0] > 0.9, jnp.nan, mech.pay(p, m)))
    with pytest.raises(jm.AuditError, match=r"non-finite numbers.*payment of buyer \d+x.*first at profile #") as e:
        jm.audit(env, nan_pay, prior, key=key, n_profiles=4096)
    integ = e.value.result.report["integrity"]
    n_bad = integ["nonfinite"]["payment"][0]
    assert abs(n_bad / 4096 - 0.1) < 4 * np.sqrt(0.09 / 4096)  # P(s_b > 0.9) = 0.1
    assert integ["first_nonfinite"]["profile"][0] > 0.9


def test_a_clean_audit_reports_zero_integrity_counts(key):
    env, mech, prior = _trade()
    rep = jm.audit(env, mech, prior, key=key, n_profiles=4096).report
    integ = rep["integrity"]
    assert integ["nonfinite"] == {"payment": [0, 0], "utility": [0, 0], "regret": [0, 0], "decision": 0,
                                  "deficit_or_welfare": 0}  # fmt: skip
    assert integ["first_nonfinite"] is None and integ["overflow"] == []
    assert [g["count"] for g in integ["menu_gap"]] == [0, 0]


def test_one_profile_is_refused(key):
    env, mech, prior = _trade()
    with pytest.raises(ValueError, match="n_profiles must be >= 2"):
        jm.audit(env, mech, prior, key=key, n_profiles=1)


def test_jit_of_a_replaced_mechanism_still_works():
    env, mech, _ = _trade()
    fee = mech._replace(pay=_fee_on_trade(env, mech))
    s = jnp.asarray([0.8, 0.3], jnp.float32)
    t = jax.jit(lambda m: fee.pay(fee.params, m))(s)
    np.testing.assert_allclose(np.asarray(t), np.asarray(mech.pay(mech.params, s)) + [0.01, 0.0], atol=1e-6)
