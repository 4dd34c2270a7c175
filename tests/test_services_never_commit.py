"""Services flush, callers commit (issue 9): no ``db.session.commit()`` in app/services outside task code.

The view, CLI command or task that called a service decides when its work is
done; a service that commits would end the caller's transaction halfway (and
commit whatever the caller had pending). Task code may commit: the job
runner (``app/services/jobs.py``, whose ``JobContext.progress`` commits each
step) and the job handlers themselves (functions registered with
``@jobs.handler(...)``, and the functions nested in them), which run as
tasks with a session of their own and commit batch by batch.
"""

from __future__ import annotations

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parent.parent / "app" / "services"
TASK_RUNNER = SERVICES / "jobs.py"


def _is_handler(node: ast.AST) -> bool:
    """A function registered as a job handler: ``@jobs.handler("kind")`` or ``@handler("kind")``."""
    for decorator in getattr(node, "decorator_list", []):
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if (isinstance(target, ast.Attribute) and target.attr == "handler") or (
                isinstance(target, ast.Name) and target.id == "handler"):
            return True
    return False


def _session_commits(tree: ast.AST) -> list[int]:
    """Line numbers of ``db.session.commit()`` calls outside job handlers."""
    found: list[int] = []

    def visit(node: ast.AST, in_task: bool) -> None:
        in_task = in_task or _is_handler(node)
        if (not in_task and isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "commit" and ast.unparse(node.func.value) == "db.session"):
            found.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, in_task)

    visit(tree, False)
    return found


def test_the_check_sees_a_commit_and_spares_handlers():
    source = '''
def start(actor):
    db.session.commit()

@jobs.handler("kind")
def run(ctx):
    def step():
        db.session.commit()
    db.session.commit()
'''
    assert _session_commits(ast.parse(source)) == [3]


def test_services_never_commit():
    offenders = [
        f"{path.relative_to(SERVICES.parent.parent)}:{line}"
        for path in sorted(SERVICES.rglob("*.py")) if path != TASK_RUNNER
        for line in _session_commits(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    ]
    assert not offenders, "Services must leave the commit to their caller (view, CLI, task): " + ", ".join(offenders)
