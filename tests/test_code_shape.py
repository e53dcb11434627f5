"""The product code stays easy to read: no function above McCabe complexity 25, no module above
700 lines, no import cycle inside a package (tests/code_shape.py measures; run it as
`python -m tests.code_shape` to see the figures).

ALLOWED is a ratchet for what was over the limits when the check came in and is being reworked
elsewhere: an entry fails when its figure grows, and fails when it is no longer needed (delete it
then). Nothing new goes on it.
"""
import pytest

from tests import code_shape

# "what": today's figure. Complexity as "path:function", lines as "path", cycles as
# "cycle:package" with the number of modules in the package's largest cycle.
ALLOWED: dict[str, int] = {
    # empty: every module and function is within the limits; add an entry only with a reason
}


def _measured() -> dict[str, int]:
    found = dict(code_shape.complex_functions())
    found.update(code_shape.long_modules())
    for pkg, cycles in code_shape.import_cycles().items():
        found[f"cycle:{pkg}"] = max(len(c) for c in cycles)
    return found


@pytest.fixture(scope="module")
def measured() -> dict[str, int]:
    return _measured()


def test_nothing_new_over_the_limits(measured):
    new = {k: v for k, v in measured.items() if k not in ALLOWED}
    assert not new, (f"over the limits (complexity {code_shape.MAX_COMPLEXITY}, "
                     f"{code_shape.MAX_MODULE_LINES} lines, no import cycle in a package): {new}; "
                     f"split it (python -m tests.code_shape shows all figures)")


def test_allowed_ones_do_not_grow(measured):
    grown = {k: (ALLOWED[k], v) for k, v in measured.items() if k in ALLOWED and v > ALLOWED[k]}
    assert not grown, f"allowed, but grew (allowed, now): {grown}"


def test_allow_list_has_no_stale_entries(measured):
    stale = {k: (v, measured.get(k)) for k, v in ALLOWED.items() if measured.get(k, 0) < v}
    assert not stale, (f"these got better (allowed, now; None = within the limits): {stale}; "
                       f"lower or delete their entries in ALLOWED")


def test_the_measures_see_what_they_claim(tmp_path, monkeypatch):
    """A branchy function, a long module and two modules importing each other are all caught."""
    pkg = tmp_path / "pkgx"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkgx import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkgx.a import f\n"
                              + "x = 1\n" * 700)
    (pkg / "c.py").write_text("def g(x):\n" + "".join(f"    if x == {i}:\n        return {i}\n" for i in range(26)))
    monkeypatch.setattr(code_shape, "ROOT", tmp_path)
    monkeypatch.setattr(code_shape, "PACKAGES", ("pkgx",))
    monkeypatch.setattr(code_shape, "SINGLE_MODULES", ())
    assert code_shape.complex_functions() == {"pkgx/c.py:g": 27}
    assert code_shape.long_modules() == {"pkgx/b.py": 703}
    assert code_shape.import_cycles() == {"pkgx": [["pkgx.a", "pkgx.b"]]}
