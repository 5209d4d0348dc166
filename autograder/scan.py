"""Flag learner code that reaches for the grader, for an instructor to review.

Flags never change a score: scores come from verdicts on the host, which learner code
cannot reach. They point the instructor at submissions that tried, such as code that
replaces numpy or torch functions, imports the course's grading package, or reads files
outside the notebook's own folder.
"""

from __future__ import annotations

import ast
import re

from autograder.plan import grade_id, python_source

# Modules whose attributes a learner's code has no reason to replace.
PATCHABLE = {"np", "numpy", "torch", "F", "nn", "builtins", "testing", "json", "sys", "os"}
# Attributes that are settings, which honest code sets (cudnn's determinism, for one).
SETTINGS = ("torch.backends.",)
# Calls that inspect or alter the running interpreter or reach outside the job.
CALLS = {
    "setattr": "sets attributes dynamically",
    "gc.get_objects": "walks the interpreter's objects",
    "gc.get_referrers": "walks the interpreter's objects",
    "sys.settrace": "traces the interpreter",
    "sys.setprofile": "traces the interpreter",
    "sys._getframe": "inspects the call stack",
    "inspect.stack": "inspects the call stack",
    "inspect.currentframe": "inspects the call stack",
    "os.kill": "signals processes",
    "os.killpg": "signals processes",
    "os.fork": "starts processes",
    "os.system": "runs shell commands",
    "os._exit": "ends the process",
    "sys.exit": "ends the process",
    "exit": "ends the process",
    "quit": "ends the process",
    "ctypes.CDLL": "loads native code",
    "socket.socket": "opens network connections",
}
MODULES = {
    "autograder": "imports the course's grading package",
    "nbgrader": "imports nbgrader",
    "ctypes": "loads native code",
    "socket": "opens network connections",
    "subprocess": "runs other programs",
    "urllib": "opens network connections",
    "requests": "opens network connections",
    "multiprocessing": "starts processes",
}
PATHS = re.compile(r"(solutions/|gradebook|/grading\b|\.\./|/proc/|/etc/|autograder/)")


def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def _unpacked(targets):
    """Assignment targets with tuples and lists (``a.x, b.y = ...``) taken apart."""
    for target in targets:
        if isinstance(target, ast.Tuple | ast.List):
            yield from _unpacked(target.elts)
        elif isinstance(target, ast.Starred):
            yield from _unpacked([target.value])
        else:
            yield target


def _aliases(trees) -> dict[str, str]:
    """Local names bound by imports anywhere in the notebook, to the dotted names they
    stand for: ``import numpy as m`` gives m -> numpy, ``from os import kill`` kill -> os.kill.
    """
    aliases = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        aliases[alias.asname] = alias.name
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _resolved(name: str | None, aliases: dict[str, str]) -> str | None:
    """`name` with its first part replaced by what an import bound it to."""
    if name is None:
        return None
    first, _, rest = name.partition(".")
    return ".".join(filter(None, [aliases.get(first, first), rest]))


def _imported(node, aliases) -> list[str]:
    """Module names an import statement or an import call brings in."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        return [node.module] if node.module else []
    name = _resolved(_dotted(node.func), aliases)
    if name in ("importlib.import_module", "__import__") and node.args:
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return [first.value]
    return []


def _cell_flags(tree: ast.AST, aliases: dict[str, str]) -> list[str]:
    flags = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            for target in _unpacked(targets):
                name = _dotted(target) if isinstance(target, ast.Attribute) else None
                resolved = _resolved(name, aliases)
                if name and _patchable(name, resolved):
                    flags.append(f"replaces {name}")
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            resolved = _resolved(name, aliases)
            if resolved in CALLS or name in CALLS:
                flags.append(f"calls {name} ({CALLS.get(resolved) or CALLS[name]})")
            elif resolved in ("open", "io.open", "pathlib.Path", "Path") or (
                name and name.endswith((".read_text", ".read_bytes", ".listdir", ".walk"))
            ):
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        if PATHS.search(arg.value) or arg.value.startswith("/"):
                            flags.append(f"opens {arg.value!r}")
        if isinstance(node, ast.Import | ast.ImportFrom | ast.Call):
            for name in _imported(node, aliases):
                top = name.split(".")[0]
                if top in MODULES:
                    flags.append(f"imports {name} ({MODULES[top]})")
        elif isinstance(node, ast.Name) and node.id in ("__builtins__", "__import__"):
            flags.append(f"uses {node.id}")
        elif isinstance(node, ast.Attribute) and (
            node.attr in ("__code__", "__globals__") or _dotted(node) == "sys.modules"
        ):
            flags.append(f"uses {_dotted(node) or node.attr}")
    return flags


def _patchable(name: str, resolved: str | None) -> set[str]:
    """Those of `name` and `resolved` that are attributes of a module learners must not
    replace (and not a setting such as torch.backends.cudnn.deterministic)."""
    return {
        n
        for n in (name, resolved)
        if n and n.split(".")[0] in PATCHABLE and not n.startswith(SETTINGS)
    }


def suspicious_code(notebook) -> list[str]:
    """One line per suspicious construct in the notebook's code cells, naming the cell."""
    trees = {}
    for index, cell in enumerate(notebook.cells):
        if cell.get("cell_type") != "code":
            continue
        try:
            trees[index] = ast.parse(python_source(cell))
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue  # the cell fails when it runs, and its error is reported
    aliases = _aliases(trees.values())
    flags = []
    for index, tree in trees.items():
        name = grade_id(notebook.cells[index])
        where = f"cell {index + 1}" + (f" ({name})" if name else "")
        for flag in dict.fromkeys(_cell_flags(tree, aliases)):
            flags.append(f"{where} {flag}")
    return flags
