"""Mutation testing of the physics and money code with mutmut (`make mutation`; not part of `make test`).

mutmut rewrites every function of the modules under test into a trampoline that can switch to any
of its mutants (an operator flipped, a constant nudged, an argument dropped, ...), runs the tests
that cover that function once per mutant, and calls a mutant killed when some test fails.

Our `idf` namespace is spread over four folders (server/, kernels/, clients/python/, cli/), and
mutmut names modules after their path under `src/`. So each group is staged in its own folder,
build/mutation/<group>/, holding the four portions merged into `src/idf` (as the wheel merges them),
the tests, and a pyproject.toml whose [tool.mutmut] names the group's modules and tests; mutmut
runs there. mutmut does not mutate decorated functions (@triton.jit kernels, properties): the
Triton kernels are checked by comparison with the reference paths that are mutated here.

    python tools/mutation.py                 # every group, then the report
    python tools/mutation.py money kernels   # some groups
    python tools/mutation.py --report        # the report of what has run (docs/mutation-report.md)
    python tools/mutation.py --survivors samplers  # after new tests: run the survivors again

Triage: a surviving mutant is killed by a new test, or listed in tools/mutation_triage/<group>.txt as
`<mutant name or fnmatch pattern>  <category>  # why`, category one of
    equivalent  it cannot change any observable result (SQL keyword case, a falsy None for False, ...)
    gpu-only    it changes only the CUDA branch of a dispatch (`use_triton`), which the CPU suite
                cannot reach; the same tests kill it where a GPU runs them
The report counts both apart from the score: killed / (mutants − equivalent − gpu-only); a mutant no
test reaches (not covered) counts against it, and mutants a partial run has not reached yet are
listed apart, not scored.
Statuses are saved per group in tools/mutation_results/<group>.json with a hash of each mutated
function's source; a run (in any checkout) runs only the mutants with no status for the sources as
they are now, and merges what it finds.
"""

from __future__ import annotations

import argparse
import ast
import copy
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "mutation"
PORTIONS = ["server/idf", "kernels/idf", "clients/python/idf", "cli/idf"]
TRIAGE = ROOT / "tools" / "mutation_triage"  # one <group>.txt per group
CATEGORIES = ("equivalent", "gpu-only")
REPORT = ROOT / "docs" / "mutation-report.md"
# Each group's statuses, kept in the repository after a run (build/ is not): the report is written
# from these, so a checkout without build/mutation/ still reports every group that has ever run.
SAVED = ROOT / "tools" / "mutation_results"


@dataclass(frozen=True)
class Group:
    modules: tuple[str, ...]  # paths under src/idf
    tests: tuple[str, ...]  # pytest selection (files or node ids), run in-process
    # Tests that cannot see a mutant (they run the code in a child process, which imports the
    # unmutated tree) or that repeat, slowly, what faster tests check: not run per mutant.
    skip: str = ""


GROUPS: dict[str, Group] = {
    "money": Group(
        ("engine/market/amm.py", "store/ledger.py", "client/merkle.py"),
        (
            "tests/test_amm.py",
            "tests/test_merkle.py",
            "tests/test_merkle_edges.py",
            "tests/test_ledger_audit.py",
            "tests/test_market.py",
            "tests/test_money_hardening.py",
        ),
        skip="sigkill or 32_concurrent_clients",
    ),
    "kernels": Group(
        ("kernels/*.py",),
        ("tests/kernels", "tests/physics", "tests/test_transport.py"),
    ),
    "samplers": Group(
        (
            "engine/sampling/samplers.py",
            "engine/sampling/boltzmann.py",
            "engine/sampling/energy_models.py",
            "engine/sampling/spec.py",
            "engine/sampling/energy.py",
            "engine/sampling/models/*.py",
        ),
        (
            "tests/test_sampling.py",
            "tests/test_sampler_classes.py",
            "tests/test_sampling_checks.py",
            "tests/test_sampling_runs.py",
            "tests/physics",
            "tests/test_engine_hardening.py",
        ),
    ),
    "flow": Group(
        (
            "engine/flows/navier_stokes.py",
            "engine/forecast/physics.py",
            "engine/forecast/nvp.py",
            "engine/forecast/registry.py",
        ),
        (
            "tests/test_navier_stokes.py",
            "tests/test_nvp.py",
            "tests/test_flow_checks.py",
            "tests/test_transport.py",
            "tests/test_forecast_checks.py",
            "tests/test_forecaster_protocol.py",
            "tests/test_engine_hardening.py",
            "tests/test_server.py",
        ),
    ),
}


def stage(name: str, group: Group) -> Path:
    """build/mutation/<name>/ with src/idf (the merged portions), tests/ and the mutmut config.
    mutmut's own results (mutants/) are kept between runs."""
    where = BUILD / name
    src = where / "src" / "idf"
    if src.exists():
        shutil.rmtree(src)
    for portion in PORTIONS:
        shutil.copytree(
            ROOT / portion,
            src,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    if (where / "tests").exists():
        shutil.rmtree(where / "tests")
    shutil.copytree(
        ROOT / "tests", where / "tests", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    only = ", ".join(json.dumps(f"src/idf/{m}") for m in group.modules)
    tests = ", ".join(json.dumps(t) for t in group.tests)
    # statistical tests marked slow repeat what the fast exact ones check, at 10-100x the cost
    args = ["-x", "-q", "-p", "no:cacheprovider", "-m", "not slow"] + (
        ["-k", f"not ({group.skip})"] if group.skip else []
    )
    pytest_section = (
        ROOT.joinpath("pyproject.toml").read_text().split("[tool.pytest.ini_options]", 1)[1]
    )
    pytest_section = pytest_section.split("\n[", 1)[0]
    (where / "pyproject.toml").write_text(
        "[tool.mutmut]\n"
        'source_paths = ["src"]\n'
        f"only_mutate = [{only}]\n"
        f"pytest_add_cli_args_test_selection = [{tests}]\n"
        # -x: the first failing test kills the mutant; no cache folder in the copy
        f"pytest_add_cli_args = {json.dumps(args)}\n"
        # torch, grpc and our server threads are not fork-safe after a test run
        'process_isolation = "forkserver"\n'
        "timeout_multiplier = 10.0\n"
        "timeout_constant = 10.0\n"
        "\n[tool.pytest.ini_options]" + pytest_section
    )
    return where


def run(name: str, group: Group, jobs: int, survivors: bool = False) -> None:
    """mutmut over the group. mutmut keeps each mutant's status while its function is unchanged,
    so new tests do not reach old survivors by themselves: `survivors` runs those again, after
    dropping mutmut's map of which tests cover which function (else new tests stay unmapped)."""
    done = ("killed", "timeout", "segfault")
    saved = SAVED / f"{name}.json"
    if (
        saved.exists()
    ):  # run only what has no final status for these sources (and, asked for, the survivors)
        found = statuses(name)
        again = [
            m
            for m, status in found.items()
            if status == "not checked" or (survivors and status not in done)
        ]
        again += [f"{f}__mutmut_*" for f in pending_functions(name, found)]
        if not again:
            print(
                f"== {name}: nothing to run (every mutant of these sources has a final status)",
                flush=True,
            )
            return
    else:  # never run: every mutant
        again = []
    where = stage(name, group)
    (where / "hashes.json").write_text(
        json.dumps(function_hashes(group))
    )  # what this run's statuses are of
    env = dict(
        os.environ,
        TRITON_INTERPRET="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    mutmut = Path(sys.executable).with_name("mutmut")
    print(
        f"== {name}: mutating {', '.join(group.modules)} with {', '.join(group.tests)}", flush=True
    )
    if survivors:
        (where / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    if again:
        print(
            f"   {len(again)} mutants: {'surviving, uncovered or ' if survivors else ''}not yet run",
            flush=True,
        )
    subprocess.run(
        [str(mutmut), "run", "--max-children", str(jobs), *again], cwd=where, env=env, check=False
    )


def results(name: str) -> dict[str, str]:
    """mutant name → status (killed, survived, timeout, no tests, ...) from mutmut's record of the
    group in this checkout (build/mutation/<name>/)."""
    mutmut = Path(sys.executable).with_name("mutmut")
    out = subprocess.run(
        [str(mutmut), "results", "--all", "true"],
        cwd=BUILD / name,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
    )
    found = {}
    for line in out.stdout.splitlines():
        m = re.match(r"\s*(\S+__mutmut_\d+):\s*(.+?)\s*$", line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def module_files(group: Group) -> dict[str, str]:
    """Module name (idf.engine.market.amm) → its path in the repository, for the group's modules."""
    files = {}
    for portion in PORTIONS:
        for module in group.modules:
            for path in sorted((ROOT / portion).glob(module)):
                rel = path.relative_to(ROOT / portion).with_suffix("")
                files[".".join(("idf", *rel.parts))] = str(path.relative_to(ROOT))
    return files


def function_hashes(group: Group, commit: str | None = None) -> dict[str, str]:
    """source_hashes of the group's modules, as they are now or at `commit`."""
    hashes = {}
    for module, path in module_files(group).items():
        if commit is None:
            source = (ROOT / path).read_text()
        else:
            shown = subprocess.run(
                ["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True, text=True
            )
            if shown.returncode:
                continue
            source = shown.stdout
        hashes.update(source_hashes(module, source))
    return hashes


def _normal(node: ast.AST, source: str) -> str:
    """`node` as mutmut sees it, for hashing: its AST without positions (so formatting, comments and
    quoting do not count), without type annotations (mutmut never mutates inside one) and without
    triple-quoted docstrings (mutmut never mutates a triple-quoted string). Two sources with the
    same normal form get the same mutants, numbered alike."""
    node = copy.deepcopy(node)

    class Unannotated(ast.NodeTransformer):
        def visit_AnnAssign(
            self, n: ast.AnnAssign
        ) -> ast.AST:  # x: T = v is x = v; a bare x: T stays
            return ast.Assign([n.target], n.value) if n.value is not None else n

    node = Unannotated().visit(node)
    for n in ast.walk(node):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n.returns = None
        if isinstance(n, ast.arg):
            n.annotation = None
        if isinstance(n, ast.AnnAssign):
            n.annotation = ast.Constant(None)
        body = getattr(n, "body", None)
        if (
            isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
            and (ast.get_source_segment(source, body[0]) or "")
            .lstrip("rRuUbB")
            .startswith(('"""', "'''"))
        ):
            n.body = body[1:] or [ast.Pass()]
    return ast.dump(node)


def source_hashes(module: str, source: str) -> dict[str, str]:
    """Each mutated function's key as mutmut names its mutants (idf.engine.market.amm.x_quote,
    idf.engine.market.amm.xǁPoolǁswap) → a hash of its normal form (`_normal`: formatting,
    comments, annotations and docstrings do not count), and the module → a hash of the rest: the
    code outside those functions, decorated functions included (mutmut leaves them unmutated, but
    a changed constant, property or kernel changes what the mutated functions do). Module-level
    imports and the module docstring are left out of that hash: moving a module, or an imported
    name, changes neither what its functions compute nor the names mutmut gives their mutants
    beyond the module prefix (code in other modules is not hashed here in any case)."""
    hashes = {}
    tree = ast.parse(source)
    tree.body = [
        node
        for node in tree.body
        if not isinstance(node, (ast.Import, ast.ImportFrom))
        and not (
            node is tree.body[0]
            and isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
        )
    ]
    for node in tree.body:
        defs = (
            [(f"x_{node.name}", node)]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            else []
        )
        if isinstance(node, ast.ClassDef):
            defs = [
                (f"xǁ{node.name}ǁ{m.name}", m)
                for m in node.body
                if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
            ]
        for key, fn in defs:
            if fn.decorator_list:  # no mutants, no key: part of the module's hash
                continue
            hashes[f"{module}.{key}"] = hashlib.sha256(_normal(fn, source).encode()).hexdigest()
            fn.body = [ast.Pass()]
    hashes[module] = hashlib.sha256(_normal(tree, source).encode()).hexdigest()
    return hashes


def function_of(mutant: str) -> str:
    return mutant.rsplit("__mutmut_", 1)[0]


def _fresh(results: dict[str, str], then: dict[str, str], now: dict[str, str]) -> dict[str, str]:
    """The statuses, of those measured on sources hashed `then`, that still hold for the sources now:
    those of functions whose source (and module-level code) is unchanged; mutmut numbers a
    function's mutants from its source, so for those the names still mean the same mutants."""
    return {
        m: st
        for m, st in results.items()
        if then.get(function_of(m)) == now.get(function_of(m))
        and then.get(module_of(m)) == now.get(module_of(m))
    }


def _saved(name: str) -> tuple[dict[str, str], dict[str, str]]:
    """The saved (function hashes, statuses) of a group; empty when it has never been saved."""
    path = SAVED / f"{name}.json"
    if not path.exists():
        return {}, {}
    data = json.loads(path.read_text())
    return data.get("functions") or function_hashes(GROUPS[name], data["commit"]), data["results"]


def _ran_here(name: str) -> bool:
    """Whether run() has run the group in this checkout (it records the hashes of what it ran on)."""
    return (BUILD / name / "mutants").exists() and (BUILD / name / "hashes.json").exists()


def _built(name: str) -> tuple[dict[str, str], dict[str, str]]:
    """This checkout's mutmut record of a group and the function hashes of the sources it last ran on;
    empty when the group has not run here."""
    if not _ran_here(name):
        return {}, {}
    return json.loads((BUILD / name / "hashes.json").read_text()), results(name)


def statuses(name: str) -> dict[str, str]:
    """The group's statuses for the sources as they are now: the saved ones that still hold, updated
    by what this checkout's runs found that still holds (a run of only some mutants leaves the
    others `not checked` in mutmut's record)."""
    now = function_hashes(GROUPS[name])
    saved_hashes, saved = _saved(name)
    merged = _fresh(saved, saved_hashes, now)
    built_hashes, built = _built(name)
    for m, st in _fresh(built, built_hashes, now).items():
        if st != "not checked" or m not in merged:
            merged[m] = st
    return merged


def pending_functions(name: str, found: dict[str, str]) -> list[str]:
    """Functions (mutmut's keys) new or changed since the saved run, with no status in `found` (the
    group's statuses()) for their current source yet: all their mutants are to run. (Functions
    without mutants, such as a bare `return self.t`, stay here until a save records their hash.)"""
    then, _ = _saved(name)
    now = function_hashes(GROUPS[name])
    modules = set(module_files(GROUPS[name]))
    known = {function_of(m) for m, st in found.items() if st != "not checked"}
    return sorted(
        f
        for f in now
        if f not in modules
        and f not in known
        and (then.get(f) != now[f] or then.get(module_of(f)) != now.get(module_of(f)))
    )


def save(name: str) -> None:
    """Keep mutmut's statuses of a group run here in tools/mutation_results/<name>.json, with the
    commit they were measured at (rewritten only when they or the sources' hashes change). A run in a new checkout of only
    some mutants (the rest having run before, on the same sources) is merged into the saved ones."""
    found = statuses(name) if _ran_here(name) else {}
    saved = SAVED / f"{name}.json"
    if not any(st != "not checked" for st in found.values()):
        return
    if saved.exists():
        before = json.loads(saved.read_text())
        if before["results"] == found and before.get("functions") == function_hashes(GROUPS[name]):
            return  # same statuses of the same sources (new hashes alone must be saved: they keep them fresh)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    SAVED.mkdir(exist_ok=True)
    saved.write_text(
        json.dumps(
            {
                "commit": commit,
                "functions": function_hashes(GROUPS[name]),
                "results": dict(sorted(found.items())),
            },
            indent=0,
            ensure_ascii=False,
        )
        + "\n"
    )


def carried_rows(names: list[str]) -> list[str]:
    """Rows of the current report for groups that have no results here: the runs before results were
    saved (money and kernels, 2026-11-30) are kept as they were reported, not dropped."""
    if not REPORT.exists():
        return []
    keep = [n for n in GROUPS if n not in names]
    return [
        line
        for line in REPORT.read_text().splitlines()
        if any(line.startswith(f"| {n} | `") for n in keep)
    ]


def triage() -> list[tuple[str, str, str]]:
    """(pattern, category, why) from tools/mutation_triage/*.txt."""
    marked = []
    for path in sorted(TRIAGE.glob("*.txt")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            entry, _, why = line.partition("#")
            if not entry.strip():
                continue
            pattern, category = entry.split()
            if category not in CATEGORIES or not why.strip():
                raise SystemExit(
                    f"{path.name}:{number}: need `<mutant> <{'|'.join(CATEGORIES)}>  # why`"
                )
            marked.append((pattern, category, why.strip()))
    return marked


def category_of(mutant: str, marked: list[tuple[str, str, str]]) -> str | None:
    for pattern, category, _ in marked:
        if fnmatch.fnmatchcase(mutant, pattern):
            return category
    return None


def module_of(mutant: str) -> str:
    return mutant.split(".x_")[0].split(".xǁ")[0]


def report(names: list[str]) -> str:
    marked = triage()
    lines = [
        "# Mutation report",
        "",
        "Written by `python tools/mutation.py --report` from mutmut's results; how to run and triage: docs/testing.md.",
        "killed % = killed / (mutants − equivalent − GPU-only): a mutant no test reaches (not covered) counts as not killed; a mutant that hangs (timeout) or",
        "segfaults counts as killed; one that aborts (mutmut: suspicious) is still counted as survived. GPU-only mutants change only the CUDA branch of a dispatch.",
        "",
        "| group | module | mutants | killed | survived | equivalent | GPU-only | not covered | killed % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    survivors = []
    totals = {"all": 0, "killed": 0, "survived": 0, "equivalent": 0, "gpu-only": 0, "none": 0}
    pending: dict[str, int] = {}
    for name in names:
        by_module: dict[str, dict[str, int]] = {}
        found = statuses(name)
        stale = pending_functions(name, found)
        if stale:
            pending[f"{name}: functions changed since their last run"] = len(stale)
        for mutant, status in sorted(found.items()):
            if status == "not checked":
                pending[module_of(mutant)] = pending.get(module_of(mutant), 0) + 1
                continue
            counts = by_module.setdefault(module_of(mutant), dict.fromkeys(totals, 0))
            counts["all"] += 1
            category = category_of(mutant, marked)
            if status in ("killed", "timeout", "segfault"):
                counts["killed"] += 1
            elif category:
                counts[category] += 1
            elif status == "no tests":
                counts["none"] += 1
                survivors.append((mutant, status))
            else:
                counts["survived"] += 1
                survivors.append((mutant, status))
        for module, c in sorted(by_module.items()):
            for k in totals:
                totals[k] += c[k]
            lines.append(_row(name, f"`{module}`", c))
    carried_modules = []
    for line in carried_rows(names):
        cells = [c.strip() for c in line.strip("|").split("|")]
        carried_modules.append(cells[1].strip("`"))
        for k, v in zip(
            ("all", "killed", "survived", "equivalent", "gpu-only", "none"), cells[2:8]
        ):
            totals[k] += int(v)
        lines.append(line)
    if carried_modules:  # their surviving mutants, as the earlier report listed them
        for line in REPORT.read_text().splitlines():
            m = re.match(r"- `(\S+)` \((.+)\)$", line)
            if m and module_of(m.group(1)) in carried_modules:
                status = m.group(2).split(";")[0]
                category = category_of(m.group(1), marked)
                survivors.append(
                    (
                        m.group(1),
                        status
                        + (
                            f"; triaged {category} since, counted when its group runs again"
                            if category
                            else ""
                        ),
                    )
                )
    lines.append(_row("**all**", "", totals))
    if carried_modules:
        lines += [
            "",
            "Rows of groups not run since results were saved per function (money and kernels, run 2026-11-30) are "
            "carried over from that report as they were; tests and triage entries added since count when the "
            "group runs again.",
        ]
    if pending:
        lines += [
            "",
            "Not run yet (a partial run; these rows count only the mutants that ran): "
            + ", ".join(f"`{m}` {n}" for m, n in sorted(pending.items()))
            + ".",
        ]
    lines += ["", f"Surviving and uncovered mutants not yet triaged: {len(survivors)}.", ""]
    lines += [f"- `{m}` ({s})" for m, s in survivors]
    return "\n".join(lines) + "\n"


def _row(group: str, module: str, c: dict[str, int]) -> str:
    scored = c["all"] - c["equivalent"] - c["gpu-only"]
    rate = f"{100 * c['killed'] / scored:.1f}" if scored else "—"
    return (
        f"| {group} | {module} | {c['all']} | {c['killed']} | {c['survived']} | {c['equivalent']} | "
        f"{c['gpu-only']} | {c['none']} | {rate} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "groups", nargs="*", choices=[*GROUPS, []], help="groups to run (default: all)"
    )
    parser.add_argument(
        "--report", action="store_true", help="only write the report of what has run"
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="run the mutants that survived (or were not covered) again, e.g. after adding tests",
    )
    args = parser.parse_args()
    names = args.groups or list(GROUPS)
    if not args.report:
        for name in names:
            run(name, GROUPS[name], args.jobs, args.survivors)
    for name in GROUPS:
        save(name)
    ran = [n for n in GROUPS if _ran_here(n) or (SAVED / f"{n}.json").exists()]
    text = report(ran)
    REPORT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
