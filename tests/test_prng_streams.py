"""Named PRNG streams: one salt per use, declared in app/streams.py, and no literal salt left in the app floor.

The salts are app internals (jaxmech._src.app.streams); the test reads them, and the app's source, directly.
"""

import re
from pathlib import Path

import jax
import numpy as np

from jaxmech._src.app import streams

ROOT = Path(__file__).resolve().parents[1]


def test_salts_are_distinct_and_the_numbered_stream_has_room():
    salts = {k: v for k, v in vars(streams).items() if k.isupper() and isinstance(v, int)}
    assert len(set(salts.values())) == len(salts), salts
    assert all(v < streams.TWO_OUTCOME_FIT for k, v in salts.items() if k != "TWO_OUTCOME_FIT")


def test_key_for_is_fold_in_of_the_salt():
    root = jax.random.PRNGKey(0)
    np.testing.assert_array_equal(streams.key_for(root, streams.SEARCH), jax.random.fold_in(root, 1))
    np.testing.assert_array_equal(streams.key_for(root, streams.TWO_OUTCOME_FIT, 3), jax.random.fold_in(root, 103))


def test_no_literal_salts_in_the_app_floor():
    bad = []
    for path in (ROOT / "jaxmech/_src/app").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"fold_in\([^,()]+(\([^()]*\))?, *\d", line):
                bad.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bad, bad
