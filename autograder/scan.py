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


def _cell_flags(tree: ast.AST) -> list[str]:
    flags = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            for target in _unpacked(targets):
                name = _dotted(target) if isinstance(target, ast.Attribute) else None
                if name and name.split(".")[0] in PATCHABLE and not name.startswith(SETTINGS):
                    flags.append(f"replaces {name}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in CALLS:
                flags.append(f"calls {name} ({CALLS[name]})")
            elif name in ("open", "io.open", "pathlib.Path", "Path") or (
                name and name.endswith((".read_text", ".read_bytes", ".listdir", ".walk"))
            ):
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        if PATHS.search(arg.value) or arg.value.startswith("/"):
                            flags.append(f"opens {arg.value!r}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            for name in names:
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


def suspicious_code(notebook) -> list[str]:
    """One line per suspicious construct in the notebook's code cells, naming the cell."""
    flags = []
    for index, cell in enumerate(notebook.cells):
        if cell.get("cell_type") != "code":
            continue
        try:
            tree = ast.parse(python_source(cell))
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue  # the cell fails when it runs, and its error is reported
        name = grade_id(cell)
        where = f"cell {index + 1}" + (f" ({name})" if name else "")
        for flag in dict.fromkeys(_cell_flags(tree)):
            flags.append(f"{where} {flag}")
    return flags
