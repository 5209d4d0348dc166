"""Unit tests of `autograder.scenarios.common` (transcripts across processes) and
`autograder.scenarios.runner` (a scenario run against a learner's namespace).

Transcripts go through strict JSON (no NaN literals), as between the sandbox and the host.
"""

from __future__ import annotations

import base64
import json
import sys
import types

import numpy as np
import pytest
import torch

from autograder.scenarios import runner
from autograder.scenarios.common import (
    MAX_ELEMENTS,
    MAX_STRING,
    IncompleteTranscript,
    Opaque,
    Transcript,
    call,
    decode,
    encode,
)


def roundtrip(value):
    return decode(json.loads(json.dumps(encode(value), allow_nan=False)))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ------------------------------------------------------------------ numpy round trips


@pytest.mark.parametrize(
    "dtype",
    [
        np.float64,
        np.float32,
        np.float16,
        np.int64,
        np.int32,
        np.int8,
        np.uint8,
        np.bool_,
        np.complex128,
        np.complex64,
    ],
)
def test_arrays_keep_values_dtype_and_shape(dtype):
    original = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)
    out = roundtrip(original)
    assert type(out) is np.ndarray
    assert out.dtype == np.dtype(dtype)
    assert out.shape == (2, 3, 4)
    assert np.array_equal(out, original)


def test_non_contiguous_and_big_endian_arrays_keep_their_values():
    base = np.arange(12.0).reshape(3, 4)
    assert np.array_equal(roundtrip(base.T), [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7, 11]])
    assert np.array_equal(roundtrip(base[:, ::2]), [[0, 2], [4, 6], [8, 10]])
    swapped = np.array([1.5, -2.0], dtype=">f8")
    out = roundtrip(swapped)
    assert out.dtype == np.dtype(">f8") and out.tolist() == [1.5, -2.0]


def test_empty_and_zero_dimensional_arrays_stay_arrays():
    empty = roundtrip(np.zeros((0, 3), dtype=np.float32))
    assert empty.shape == (0, 3) and empty.dtype == np.float32
    zero_d = roundtrip(np.array(3.5))
    assert type(zero_d) is np.ndarray and zero_d.shape == () and zero_d[()] == 3.5


def test_nan_inf_and_signed_zero_survive_in_arrays():
    out = roundtrip(np.array([np.nan, np.inf, -np.inf, -0.0]))
    assert np.isnan(out[0]) and out[1] == np.inf and out[2] == -np.inf
    assert out[3] == 0.0 and np.signbit(out[3])


@pytest.mark.parametrize(
    "scalar",
    [np.float64(2.5), np.float32(-1.25), np.int64(-7), np.uint8(200), np.bool_(True)],
    ids=lambda s: type(s).__name__,
)
def test_numpy_scalars_keep_their_type_and_value(scalar):
    out = roundtrip(scalar)
    assert type(out) is type(scalar)
    assert out == scalar


# ------------------------------------------------------------------ plain values


def test_plain_values_and_python_types():
    for value in (None, True, False, 0, -17, 2**63 - 1, -(2**63 - 1), 1.5, "text", ""):
        out = roundtrip(value)
        assert out == value and type(out) is type(value)


def test_nan_and_inf_floats_are_kept_as_floats():
    nan, inf, minus_inf = roundtrip([float("nan"), float("inf"), float("-inf")])
    assert type(nan) is float and nan != nan
    assert inf == float("inf") and minus_inf == float("-inf")


def test_ints_beyond_64_bits_become_opaque():
    assert roundtrip(2**63) == Opaque("int too large to record")
    assert roundtrip(-(2**63)) == Opaque("int too large to record")
    assert roundtrip(10**30) == Opaque("int too large to record")


def test_tuples_and_lists_stay_distinct():
    out = roundtrip((1, [2, (3, 4)], ()))
    assert out == (1, [2, (3, 4)], ())
    assert type(out) is tuple and type(out[1]) is list and type(out[1][1]) is tuple


def test_dicts_become_transcripts_at_every_level():
    out = roundtrip({"a": {"b": [{"c": 1}]}, "d": (np.int64(3),)})
    assert isinstance(out, Transcript)
    assert isinstance(out["a"], Transcript) and isinstance(out["a"]["b"][0], Transcript)
    assert out == {"a": {"b": [{"c": 1}]}, "d": (3,)}
    assert type(out["d"][0]) is np.int64


def test_a_missing_key_of_a_transcript_raises_incomplete_transcript():
    out = roundtrip({"present": 1})
    with pytest.raises(IncompleteTranscript):
        out["absent"]
    assert issubclass(IncompleteTranscript, LookupError)
    assert out.get("absent", "default") == "default"


class Widget:
    pass


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (Widget(), "Widget"),
        ({1, 2}, "set"),
        (len, "builtin_function_or_method"),
        (lambda: None, "function"),
        ({1: "non-str key"}, "dict"),
        (np.array(["a"]), "ndarray of <U1"),
        (np.array([object()]), "ndarray of object"),
    ],
    ids=["object", "set", "builtin", "lambda", "int-keyed dict", "str array", "object array"],
)
def test_other_objects_become_opaque_with_their_type_name(value, name):
    assert roundtrip(value) == Opaque(name)


def test_opaque_values_round_trip_as_themselves():
    assert roundtrip([Opaque("Layer")]) == [Opaque("Layer")]
    assert Opaque("Layer") != Opaque("Other") and Opaque("Layer") != "Layer"


def test_long_strings_and_keys_are_cut_to_max_string():
    out = roundtrip({"k" * (MAX_STRING + 10): "v" * (MAX_STRING + 1)})
    ((key, value),) = out.items()
    assert key == "k" * MAX_STRING and value == "v" * MAX_STRING


def test_too_deep_nesting_is_recorded_as_opaque_and_still_decodes():
    nested = 0
    for _ in range(20):
        nested = [nested]
    out = roundtrip(nested)
    for _ in range(13):  # the outer list is at depth 0; depth 13 is beyond MAX_DEPTH = 12
        assert isinstance(out, list)
        (out,) = out
    assert out == Opaque("nested too deeply")


def test_arrays_above_the_element_limit_become_opaque():
    out = roundtrip(np.zeros(MAX_ELEMENTS + 1, dtype=np.uint8))
    assert out == Opaque(f"ndarray with {MAX_ELEMENTS + 1} elements (too large to record)")


# ------------------------------------------------------------------ torch round trips


@pytest.mark.parametrize(
    "dtype",
    [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.bool],
)
def test_tensors_keep_values_dtype_and_shape(dtype):
    original = (torch.arange(6).reshape(2, 3) % 4).to(dtype)
    out = roundtrip(original)
    assert type(out) is torch.Tensor
    assert out.dtype == dtype and out.shape == (2, 3)
    assert torch.equal(out, original)
    assert not out.requires_grad


def test_tensor_requires_grad_and_parameters_are_kept():
    leaf = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    computed = leaf * 3
    weight = torch.nn.Parameter(torch.ones(3))
    frozen = torch.nn.Parameter(torch.zeros(2), requires_grad=False)
    out_leaf, out_computed, out_weight, out_frozen = roundtrip([leaf, computed, weight, frozen])
    assert out_leaf.requires_grad and out_leaf.dtype == torch.float64
    assert not isinstance(out_leaf, torch.nn.Parameter)
    assert out_computed.requires_grad and out_computed.tolist() == [3.0, 6.0]
    assert isinstance(out_weight, torch.nn.Parameter) and out_weight.requires_grad
    assert isinstance(out_frozen, torch.nn.Parameter) and not out_frozen.requires_grad


def test_zero_dimensional_and_complex_tensors():
    scalar = roundtrip(torch.tensor(2.5))
    assert scalar.shape == () and scalar.item() == 2.5
    z = roundtrip(torch.tensor([1 + 2j], dtype=torch.complex64).conj())
    assert z.dtype == torch.complex64 and z.tolist() == [1 - 2j]


def test_sparse_tensors_become_opaque():
    assert roundtrip(torch.ones(2).to_sparse()) == Opaque("tensor of torch.float32")


def test_complex_tensor_requires_grad_is_kept():
    z = torch.ones(2, dtype=torch.complex64, requires_grad=True)
    assert roundtrip(z).requires_grad


# ------------------------------------------------------------------ decode rejects


def _nd(dtype: str, shape, data: bytes = b"", scalar: bool = False) -> dict:
    return {"nd": [dtype, shape, b64(data), scalar]}


EIGHT = np.float64(1.0).tobytes()

MALFORMED = {
    "unknown tag": {"zz": 1},
    "two keys": {"tu": [], "di": {}},
    "no key": {},
    "set": {1, 2},
    "tu with a dict body": {"tu": {}},
    "di with a list body": {"di": []},
    "ob not a string": {"ob": 3},
    "string too long": "x" * (MAX_STRING + 1),
    "float repr not a number": {"f": "abc"},
    "float repr not a string": {"f": 1.5},
    "float repr too long": {"f": "1" * 41},
    "array body not a list": {"nd": "<f8"},
    "array body of 3": {"nd": ["<f8", [1], b64(EIGHT)]},
    "data too short": _nd("<f8", [2], EIGHT),
    "data too long": _nd("<f8", [], EIGHT * 2, scalar=True),
    "scalar with a shape": _nd("<f8", [1], EIGHT, scalar=True),
    "scalar not a bool": {"nd": ["<f8", [1], b64(EIGHT), 0]},
    "base64 invalid": {"nd": ["<f8", [0], "!!!!", False]},
    "dtype O": _nd("O", [0]),
    "dtype |O": _nd("|O", [0]),
    "dtype U": _nd("U", [0]),
    "dtype <U1": _nd("<U1", [0]),
    "dtype <M8": _nd("<M8", [0]),
    "dtype <c32 (over 16 bytes)": _nd("<c32", [0]),
    "dtype structured": _nd("f8,i4", [0]),
    "dtype not canonical f8": _nd("f8", [1], EIGHT),
    "dtype not canonical float64": _nd("float64", [1], EIGHT),
    "dtype not canonical =f8": _nd("=f8", [1], EIGHT),
    "dtype not canonical d": _nd("d", [1], EIGHT),
    "dtype unknown": _nd("nonsense", [0]),
    "dtype not a string": {"nd": [8, [1], b64(EIGHT), False]},
    "shape negative": _nd("<f8", [-1]),
    "shape bool": _nd("<f8", [True], EIGHT),
    "shape float": _nd("<f8", [1.0], EIGHT),
    "shape not a list": _nd("<f8", 1, EIGHT),
    "shape of 9 dimensions": _nd("<f8", [1] * 9, EIGHT),
    "size above the limit": _nd("<u1", [MAX_ELEMENTS + 1]),
    "size above the limit in 2-d": _nd("<u1", [2000, 2000]),
    "tensor dtype unknown": {"t": [_nd("<f8", [1], EIGHT), "torch.qint8", False, False]},
    "tensor requires_grad not bool": {"t": [_nd("<f8", [1], EIGHT), "torch.float64", 1, False]},
    "tensor parameter not bool": {"t": [_nd("<f8", [1], EIGHT), "torch.float64", False, None]},
    "tensor data not an array": {"t": [{"ob": "x"}, "torch.float64", False, False]},
    "tensor data a scalar": {"t": [_nd("<f8", [], EIGHT, True), "torch.float64", False, False]},
    "tensor body of 3": {"t": [_nd("<f8", [1], EIGHT), "torch.float64", False]},
}


def _deep(make, depth: int = 50):
    value = 0
    for _ in range(depth):
        value = make(value)
    return value


MALFORMED |= {
    "deep lists": _deep(lambda v: [v]),
    "deep tuples": _deep(lambda v: {"tu": [v]}),
    "deep dicts": _deep(lambda v: {"di": {"k": v}}),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_decode_rejects_malformed_data_with_value_error(data):
    with pytest.raises(ValueError):
        decode(data)


def test_decode_accepts_what_it_must_not_confuse_with_malformed_data():
    assert decode(_nd("<f8", [0, 3])).shape == (0, 3)
    assert decode(_nd("|b1", [2], b"\x01\x00")).tolist() == [True, False]
    assert decode({"f": "-inf"}) == float("-inf")
    assert decode({"ob": "Layer"}) == Opaque("Layer")


def _numpy_or_torch_error(data, name: str):
    """Malformed data on which numpy or torch raise something other than ValueError."""
    return pytest.param(data, id=name)


@pytest.mark.parametrize(
    "data",
    [
        # sizes beyond any integer numpy can hold
        _numpy_or_torch_error(_nd("<f8", [10**400]), "shape 1e400"),
        _numpy_or_torch_error(_nd("<f8", [10**300, 10**300]), "shape 1e300 x 1e300"),
        # np.dtype parses comma strings with ast and lets SyntaxError through
        _numpy_or_torch_error(_nd(",", [0]), "dtype ','"),
        _numpy_or_torch_error(_nd("(1,2", [0]), "dtype '(1,2'"),
        # torch.nn.Parameter(int tensor, requires_grad=True) raises RuntimeError
        _numpy_or_torch_error({"t": [_nd("<i8", [0]), "torch.int64", True, True]}, "int Parameter"),
    ],
)
def test_decode_rejects_malformed_data_with_value_error_not_another_error(data):
    with pytest.raises(ValueError):
        decode(data)


# ------------------------------------------------------------------ call


def add(a, b=0):
    return a + b


def fails(message):
    raise ValueError(message)


def test_call_records_the_value():
    assert call(add, 2, b=3) == {"value": 5}
    assert call(add, [1], b=[2]) == {"value": [1, 2]}


def test_call_records_the_first_line_of_an_error():
    assert call(fails, "bad input\nsecond line") == {
        "raised": "fails raised ValueError: bad input."
    }
    assert call(fails, "  padded  ") == {"raised": "fails raised ValueError: padded."}
    assert call(fails, "") == {"raised": "fails raised ValueError."}


def test_call_caps_the_message_at_300_characters():
    outcome = call(fails, "a" * 500 + "\nmore")
    assert outcome == {"raised": "fails raised ValueError: " + "a" * 300 + "."}


def test_call_names_the_call_with_what_or_the_type():
    assert call(fails, "x", what="layer.forward") == {
        "raised": "layer.forward raised ValueError: x."
    }

    class Layer:
        def __call__(self):
            raise KeyError("k")

    assert call(Layer()) == {"raised": "Layer raised KeyError: 'k'."}


def test_call_records_system_exit():
    assert call(sys.exit, 3) == {"raised": "exit raised SystemExit: 3."}

    def quits():
        raise SystemExit

    assert call(quits) == {"raised": "quits raised SystemExit."}


# ------------------------------------------------------------------ runner


@pytest.fixture
def fake_scenarios(monkeypatch):
    """A scenario module under autograder.scenarios, with scenarios that record calls."""
    module = types.ModuleType("autograder.scenarios._fake_for_tests")
    module.calls = []

    def echo(fn):
        module.calls.append("echo")
        return {"out": fn(2)}

    def pair(fn, other):
        module.calls.append("pair")
        return (fn(1), other(1))

    def explode(fn):
        raise ZeroDivisionError("z" * 400)

    def leaves(fn):
        raise SystemExit(4)

    class BadDict(dict):
        def items(self):
            raise RuntimeError("no items")

    def unencodable(fn):
        return BadDict(a=1)

    for function in (echo, pair, explode, leaves, unencodable):
        setattr(module, function.__name__, function)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


@pytest.mark.parametrize(
    "module",
    ["os", "autograder.checks.bn01_forward", "autograder.scenarios", "autograder.scenariosx"],
)
def test_run_refuses_modules_outside_the_scenarios_package(module):
    with pytest.raises(ValueError, match="not a scenario module"):
        runner.run(module, "system", [], {})


def test_run_returns_the_encoded_transcript(fake_scenarios):
    result = runner.run(fake_scenarios.__name__, "echo", ["f"], {"f": lambda v: v * 1.5})
    assert result == {"transcript": {"di": {"out": 3.0}}}
    assert decode(json.loads(json.dumps(result["transcript"]))) == {"out": 3.0}


def test_run_reports_the_first_missing_name_without_running(fake_scenarios):
    learner = {"f": abs, "unrelated": 1}
    assert runner.run(fake_scenarios.__name__, "pair", ["f", "g"], learner) == {"missing": "g"}
    assert runner.run(fake_scenarios.__name__, "echo", ["h"], learner) == {"missing": "h"}
    assert fake_scenarios.calls == []


def test_run_reports_a_crashed_scenario(fake_scenarios):
    name = fake_scenarios.__name__
    crashed = runner.run(name, "explode", ["f"], {"f": abs})
    assert crashed == {"crashed": "ZeroDivisionError: " + "z" * 300}
    assert runner.run(name, "leaves", ["f"], {"f": abs}) == {"crashed": "SystemExit: 4"}
    assert runner.run(name, "unencodable", ["f"], {"f": abs}) == {
        "crashed": "RuntimeError: no items"
    }


def test_run_with_a_real_scenario_records_the_learners_error():
    def batchnorm_forward(x, gamma, beta, eps=1e-5):
        raise NotImplementedError

    result = runner.run(
        "autograder.scenarios.bn01_forward",
        "forward_basic",
        ["batchnorm_forward"],
        {"batchnorm_forward": batchnorm_forward},
    )
    transcript = decode(json.loads(json.dumps(result["transcript"])))
    assert transcript["result"] == {"raised": "batchnorm_forward raised NotImplementedError."}
