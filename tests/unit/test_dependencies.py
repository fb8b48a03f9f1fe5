"""Every third-party module Conduit imports at run time comes from a distribution that pyproject.toml declares.

``pip install .`` installs the declared dependencies and what they declare, nothing else (no lock). So:

- a module ``services/`` or ``shared/`` imports itself (found by walking their AST) must be declared directly,
  in ``dependencies`` (or in an extra when the import is guarded by ``except ImportError``);
- a module a dependency imports at run time must be in the closure of what the declared dependencies require
  (without extras nobody asks for). kombu's Redis transport imports ``packaging`` but kombu declares it only in
  its ``[redis]`` extra, which is why Conduit declares ``packaging`` itself. The second test finds any such
  module: a fresh interpreter that sees only that closure (the dev and test packages hidden) loads what the
  API and the worker load (their modules, the app objects, the broker transport, the worker command, uvicorn's
  loop and protocol); the third shows it fails without ``packaging``.

The installed-wheel test (``tests/integration/test_install.py``) proves the same by running the services.
"""

import ast
import functools
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"services", "shared"}
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DECLARED = {canonicalize_name(Requirement(spec).name) for spec in PROJECT["dependencies"]}
EXTRAS = {
    canonicalize_name(Requirement(spec).name) for specs in PROJECT["optional-dependencies"].values() for spec in specs
}

# In a fresh interpreter that sees only the distributions ``pip install .`` would bring (every other one is
# hidden: importing it fails as if it were not installed, so optional imports take their fallback), load what
# the API and the worker load at run time; print the third-party top-level modules loaded.
LOADER = """
import importlib, json, pkgutil, sys

HIDDEN = set(json.loads(sys.argv[1]))

class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r} (`pip install .` does not install it)", name=name)
        return None

sys.meta_path.insert(0, Hide())
before = set(sys.modules)

import services, shared
for package in (services, shared):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)

from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.config import load_settings
create_app(load_settings(ApiSettings, {"CONDUIT_JWT_SECRET": "x" * 40}), {})

import kombu
from celery.concurrency import get_implementation
from services.worker.celery_app import POOL, create_celery, load_from_environ
app = create_celery(*load_from_environ({"REDIS_URL": "redis://127.0.0.1:9/0"}))
kombu.Connection(app.conf.broker_url).transport  # the transport class for the URL's scheme (no connection)
get_implementation(POOL)
import celery.bin.celery, celery.bin.worker, celery.apps.worker, celery.worker.consumer  # worker_main

import uvicorn.loops.uvloop, uvicorn.protocols.http.httptools_impl, uvicorn.lifespan.on  # serve()'s choices

print(json.dumps(sorted({name.partition(".")[0] for name in set(sys.modules) - before})))
"""


def _top_level_imports(tree: ast.AST, optional: bool = False) -> Iterator[tuple[str, bool, int]]:
    """``(top-level module, imported under except ImportError, line)``; ``if TYPE_CHECKING:`` bodies skipped."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (found for child in node.orelse for found in _top_level_imports(child, optional))
            continue
        if isinstance(node, ast.Import):
            yield from ((alias.name.split(".")[0], optional, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], optional, node.lineno
        elif isinstance(node, ast.Try) and any(
            "ImportError" in ast.unparse(handler.type) for handler in node.handlers if handler.type is not None
        ):
            for child in node.body:
                yield from _top_level_imports(child, optional=True)
            rest: list[ast.AST] = [*node.handlers, *node.orelse, *node.finalbody]
            for other in rest:
                yield from _top_level_imports(other, optional)
        else:
            yield from _top_level_imports(node, optional)


def _third_party(name: str) -> bool:
    return name not in sys.stdlib_module_names and name not in FIRST_PARTY and not name.startswith("__")


@functools.cache
def _modules() -> Mapping[str, list[str]]:
    return packages_distributions()  # scans every installed distribution: once


def _distributions(module: str) -> set[str]:
    return {canonicalize_name(dist) for dist in _modules().get(module, [])}


def _closure(specs: list[str]) -> set[str]:
    """Every distribution ``pip install`` brings in for ``specs``: their Requires-Dist, recursively, where the
    marker holds for this interpreter with only the extras asked for."""
    wanted: dict[str, set[str]] = {}
    todo = [Requirement(spec) for spec in specs]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        extras = wanted.get(name)
        if extras is not None and requirement.extras <= extras:
            continue
        wanted[name] = (extras or set()) | requirement.extras
        try:
            needs = requires(name) or []
        except PackageNotFoundError:
            continue  # not installed here (another platform's marker held); pip would say so at install
        for spec in needs:
            need = Requirement(spec)
            if need.marker is None or any(need.marker.evaluate({"extra": e}) for e in {"", *wanted[name]}):
                todo.append(need)
    return set(wanted)


def test_every_module_services_and_shared_import_is_a_declared_dependency():
    undeclared = []
    for path in sorted([*(ROOT / "services").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]):
        for module, optional, line in _top_level_imports(ast.parse(path.read_text(), str(path))):
            if not _third_party(module):
                continue
            dists = _distributions(module)
            allowed = DECLARED | EXTRAS if optional else DECLARED
            if not dists & allowed:
                where = f"{path.relative_to(ROOT)}:{line}"
                undeclared.append(f"{where}: {module} (from {sorted(dists) or 'no installed distribution'})")
    assert not undeclared, "imported but not declared in pyproject.toml [project] dependencies:\n" + "\n".join(
        undeclared
    )


def _load_as_installed(specs: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``LOADER`` with every distribution outside the closure of ``specs`` hidden."""
    closure = _closure(specs)
    hidden = sorted(
        name
        for name in _modules()
        if _third_party(name) and _distributions(name) and not _distributions(name) & closure
    )
    return subprocess.run(
        [sys.executable, "-c", LOADER, json.dumps(hidden)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_what_the_services_load_at_run_time_is_installed_by_pip_install_dot():
    done = _load_as_installed(PROJECT["dependencies"])
    assert done.returncode == 0, (
        "a module the services load is not installed by `pip install .` (declare it):\n" + (done.stderr[-3000:])
    )
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert {"litestar", "celery", "kombu", "uvicorn", "uvloop", "httptools", "packaging"} <= loaded, loaded


def test_without_declaring_packaging_the_worker_could_not_load_its_broker_transport():
    """The check above is not vacuous: kombu's Redis transport imports packaging, and nothing else declared
    brings it in (kombu lists it only under its ``[redis]`` extra)."""
    others = [spec for spec in PROJECT["dependencies"] if canonicalize_name(Requirement(spec).name) != "packaging"]
    assert "packaging" not in _closure(others)
    done = _load_as_installed(others)
    assert done.returncode != 0
    assert "No module named 'packaging'" in done.stderr, done.stderr[-3000:]
    assert "kombu/transport/redis.py" in done.stderr
