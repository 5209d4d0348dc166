"""Calling learner code and recording what it returned, as data that crosses processes.

A transcript is built from None, bool, int, float, str, list, tuple, dict (str keys),
numpy arrays and scalars, and torch tensors. `encode` turns it into JSON-compatible data;
`decode` turns that back and checks every part of it, because in the grader it arrives from
a process that ran learner code and may be anything. Objects of any other type are
recorded as `Opaque` (their type name only).
"""

from __future__ import annotations

import base64
import sys

import numpy as np

MAX_ELEMENTS = 2_000_000  # per array
MAX_STRING = 4_000  # characters per string
MAX_DEPTH = 12
_ARRAY_KINDS = "biufc"
_TENSOR_DTYPES = {
    "torch.float16",
    "torch.bfloat16",
    "torch.float32",
    "torch.float64",
    "torch.int8",
    "torch.int16",
    "torch.int32",
    "torch.int64",
    "torch.uint8",
    "torch.bool",
    "torch.complex64",
    "torch.complex128",
}


class Opaque:
    """A value that is not plain data (a learner's object, a too-large array): its type."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"Opaque({self.type_name!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Opaque) and other.type_name == self.type_name

    def __hash__(self) -> int:
        return hash(self.type_name)


class Transcript(dict):
    """A decoded dict; a missing key raises `IncompleteTranscript` rather than KeyError."""

    def __missing__(self, key):
        raise IncompleteTranscript(key)


class IncompleteTranscript(LookupError):
    """A verdict asked for a part of the transcript that is not there."""


def type_name(value) -> str:
    """The name of a value's type, as a learner would recognise it."""
    return type(value).__name__


def call(fn, *args, what: str | None = None, **kwargs) -> dict:
    """Call a learner's function, class or method.

    Returns ``{"value": result}``, or ``{"raised": "name raised Error: first line."}`` if it
    raised; `what` names the call in that message (default: the function's name).
    """
    try:
        return {"value": fn(*args, **kwargs)}
    except (Exception, SystemExit) as err:  # noqa: BLE001 (any learner error is feedback)
        name = what or getattr(fn, "__name__", None) or type_name(fn)
        return {"raised": raised_message(name, err)}


def raised_message(name: str, err: BaseException) -> str:
    """ "name raised ValueError: its first line." (the learner's own message, shortened)."""
    lines = str(err).strip().splitlines()
    detail = lines[0][:300] if lines else ""
    return f"{name} raised {type_name(err)}" + (f": {detail}" if detail else "") + "."


# --------------------------------------------------------------------------- encoding


def _torch():
    return sys.modules.get("torch")


def _encode_array(arr: np.ndarray, scalar: bool = False):
    if arr.dtype.kind not in _ARRAY_KINDS or arr.dtype.itemsize > 16:
        return {"ob": f"ndarray of {arr.dtype}"}
    if arr.size > MAX_ELEMENTS:
        return {"ob": f"ndarray with {arr.size} elements (too large to record)"}
    data = np.ascontiguousarray(arr).tobytes()
    return {"nd": [arr.dtype.str, list(arr.shape), base64.b64encode(data).decode(), scalar]}


def encode(value, depth: int = 0):
    """JSON-compatible data for a transcript (see the module docstring)."""
    if depth > MAX_DEPTH:
        return {"ob": "nested too deeply"}
    if isinstance(value, np.ndarray):
        return _encode_array(value)
    if isinstance(value, np.generic):  # before float: np.float64 is a float too
        return _encode_array(np.asarray(value), scalar=True)
    if value is None or isinstance(value, bool | str):
        return value[:MAX_STRING] if isinstance(value, str) else value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else {"ob": "int too large to record"}
    if isinstance(value, float):
        return value if np.isfinite(value) else {"f": repr(value)}
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        return _encode_tensor(value, torch)
    if isinstance(value, tuple):
        return {"tu": [encode(v, depth + 1) for v in value]}
    if isinstance(value, list):
        return [encode(v, depth + 1) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"di": {k[:MAX_STRING]: encode(v, depth + 1) for k, v in value.items()}}
    if isinstance(value, Opaque):
        return {"ob": value.type_name}
    return {"ob": type_name(value)}


def _encode_tensor(tensor, torch):
    dtype = str(tensor.dtype)
    if dtype not in _TENSOR_DTYPES or tensor.layout != torch.strided:
        return {"ob": f"tensor of {dtype}"}
    data = tensor.detach().cpu().resolve_conj().resolve_neg()
    if dtype == "torch.bfloat16":
        data = data.float()
    return {
        "t": [
            _encode_array(data.numpy()),
            dtype,
            bool(tensor.requires_grad),
            isinstance(tensor, torch.nn.Parameter),
        ]
    }


# --------------------------------------------------------------------------- decoding


def decode(data):
    """The transcript that `encode` produced; raises ValueError on anything malformed."""
    try:
        return _decode(data, 0)
    except ValueError:
        raise
    except Exception as err:  # noqa: BLE001 (numpy and torch raise many kinds on bad input)
        raise ValueError(f"malformed transcript ({type(err).__name__})") from None


def _decode(data, depth: int):
    if depth > MAX_DEPTH + 1:
        raise ValueError("nested too deeply")
    if data is None or isinstance(data, bool | int | float):
        return data
    if isinstance(data, str):
        if len(data) > MAX_STRING:
            raise ValueError("string too long")
        return data
    if isinstance(data, list):
        return [_decode(v, depth + 1) for v in data]
    if not isinstance(data, dict) or len(data) != 1:
        raise ValueError(f"unexpected {type_name(data)}")
    ((tag, body),) = data.items()
    if tag == "tu" and isinstance(body, list):
        return tuple(_decode(v, depth + 1) for v in body)
    if tag == "di" and isinstance(body, dict):
        return Transcript({_string(k): _decode(v, depth + 1) for k, v in body.items()})
    if tag == "f":
        if not _is_float_repr(body):
            raise ValueError("malformed float")
        return float(body)
    if tag == "nd":
        return _decode_array(body)
    if tag == "t":
        return _decode_tensor(body)
    if tag == "ob":
        return Opaque(_string(body))
    raise ValueError(f"unknown tag {tag!r}")


def _string(value) -> str:
    if not isinstance(value, str) or len(value) > MAX_STRING:
        raise ValueError("expected a short string")
    return value


def _is_float_repr(body) -> bool:
    if not isinstance(body, str) or len(body) > 40:
        return False
    try:
        float(body)
    except ValueError:
        return False
    return True


def _decode_array(body):
    if not (isinstance(body, list) and len(body) == 4):
        raise ValueError("malformed array")
    dtype_str, shape, b64, scalar = body
    try:
        dtype = np.dtype(_string(dtype_str))
    except TypeError:
        raise ValueError("malformed array dtype") from None
    if dtype.kind not in _ARRAY_KINDS or dtype.itemsize > 16 or dtype.str != dtype_str:
        raise ValueError(f"array dtype {dtype_str!r} not allowed")
    if not (
        isinstance(shape, list)
        and len(shape) <= 8
        and all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n for n in shape)
    ):
        raise ValueError("malformed array shape")
    size = 1
    for n in shape:
        size = min(size * n, MAX_ELEMENTS + 1)
    if size > MAX_ELEMENTS or not isinstance(b64, str) or not isinstance(scalar, bool):
        raise ValueError("malformed array")
    raw = base64.b64decode(b64.encode(), validate=True)
    if len(raw) != size * dtype.itemsize or (scalar and shape):
        raise ValueError("array data does not match its shape")
    arr = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    return arr[()] if scalar else arr


def _decode_tensor(body):
    if not (isinstance(body, list) and len(body) == 4):
        raise ValueError("malformed tensor")
    encoded, dtype, requires_grad, parameter = body
    if dtype not in _TENSOR_DTYPES or not isinstance(requires_grad, bool):
        raise ValueError("malformed tensor")
    if not isinstance(parameter, bool) or not (isinstance(encoded, dict) and "nd" in encoded):
        raise ValueError("malformed tensor")
    arr = _decode_array(encoded["nd"])
    if not isinstance(arr, np.ndarray):
        raise ValueError("malformed tensor")
    import torch

    tensor = torch.from_numpy(arr).to(getattr(torch, dtype.removeprefix("torch.")))
    if parameter:
        return torch.nn.Parameter(tensor, requires_grad=requires_grad)
    differentiable = tensor.is_floating_point() or tensor.is_complex()
    return tensor.requires_grad_(requires_grad) if differentiable else tensor
