"""Table in one process: every method and edge, against Swoole's behaviour (swoole-src
src/memory/table.cc, ext-src/swoole_table.cc). The same tests run on both builds
(compiled row locks, and pure Python with PYSWOOLE_NO_EXTENSIONS=1)."""

from __future__ import annotations

import logging
import threading

import pytest

from pyswoole import Table
from pyswoole.exceptions import ServerStateError, SwooleError


def make(size: int = 1024, **kw: float) -> Table:
    table = Table(size, **kw)
    table.column("id", Table.TYPE_INT)
    table.column("name", Table.TYPE_STRING, 10)
    table.column("score", Table.TYPE_FLOAT)
    table.create()
    return table


def test_size_is_a_power_of_two_with_swooles_minimum() -> None:
    assert Table(1).get_size() == 64
    assert Table(64).get_size() == 64
    assert Table(65).get_size() == 128
    assert Table(1000).get_size() == 1024
    assert Table(1024).getSize() == 1024


def test_conflict_rows_as_swoole_counts_them() -> None:
    # Swoole's docs show total_slice_num 204 for Table(1024): 1024 * 0.2 floored
    assert make(1024).stats()["total_slice_num"] == 204
    assert make(1024, conflict_proportion=0.05).stats()["total_slice_num"] == 204  # clamped
    assert make(64, conflict_proportion=5).stats()["total_slice_num"] == 64  # clamped to 1.0


def test_memory_size_is_known_before_and_after_create() -> None:
    table = Table(100)
    table.column("v", Table.TYPE_INT)
    before = table.memory_size
    table.create()
    assert before == table.memory_size == table.get_memory_size() == table.getMemorySize()
    assert table.memory_size >= (64 + 12) * 2 * (64 + 8)


def test_set_get_whole_row_and_one_field() -> None:
    table = make()
    assert table.set("alice", {"id": 1, "name": "Alice", "score": 9.5}) is True
    assert table.get("alice") == {"id": 1, "name": "Alice", "score": 9.5}
    assert table.get("alice", "name") == "Alice"
    assert table.get("alice", "id") == 1
    assert table.get("alice", "score") == 9.5
    assert table["alice"] == {"id": 1, "name": "Alice", "score": 9.5}


def test_absent_row_or_column_is_none_where_swoole_returns_false() -> None:
    table = make()
    assert table.get("nobody") is None
    assert table.get("nobody", "id") is None
    table.set("a", {"id": 1})
    assert table.get("a", "no_such_column") is None
    with pytest.raises(KeyError):
        table["nobody"]


def test_new_row_missing_columns_are_zero_existing_row_keeps_them() -> None:
    table = make()
    table.set("k", {"id": 7})
    assert table.get("k") == {"id": 7, "name": "", "score": 0.0}
    table.set("k", {"name": "x", "score": 1.5})
    assert table.get("k") == {"id": 7, "name": "x", "score": 1.5}
    table.set("k", {"unknown": 1})  # unknown columns are skipped, as Swoole skips them
    assert table.get("k") == {"id": 7, "name": "x", "score": 1.5}
    table.set("k", {"id": None, "name": None})  # null: zero and empty
    assert table.get("k") == {"id": 0, "name": "", "score": 1.5}


def test_int_column_is_signed_64_bit() -> None:
    table = make()
    table.set("big", {"id": 2**63 - 1})
    assert table.get("big", "id") == 2**63 - 1
    table.set("neg", {"id": -(2**63)})
    assert table.get("neg", "id") == -(2**63)
    with pytest.raises(ValueError):
        table.set("over", {"id": 2**63})
    table.set("conv", {"id": 3.9, "score": 2})  # zval_get_long truncates, floats are doubles
    assert table.get("conv") == {"id": 3, "name": "", "score": 2.0}
    assert isinstance(table.get("conv", "score"), float)


def test_string_column_holds_size_rounded_up_to_8_bytes_and_cuts_longer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    table = make()  # name: 10 bytes declared, 16 held (SW_MEM_ALIGNED_SIZE)
    table.set("a", {"name": "0123456789abcdef"})
    assert table.get("a", "name") == "0123456789abcdef"
    with caplog.at_level(logging.WARNING, logger="pyswoole"):
        table.set("b", {"name": "0123456789abcdefXYZ"})
    assert table.get("b", "name") == "0123456789abcdef"
    assert "string value is too long" in caplog.text
    # a str is cut on a character boundary, so it always reads back as text
    table.set("c", {"name": "é" * 9})  # 18 bytes
    assert table.get("c", "name") == "é" * 8
    table.set("d", {"name": b"\xff" * 20})  # bytes are cut at the byte and come back bytes
    assert table.get("d", "name") == b"\xff" * 16


def test_string_column_keeps_str_or_bytes_and_stringifies_others() -> None:
    table = make()
    table.set("s", {"name": "text"})
    table.set("b", {"name": b"\x00bin"})
    table.set("n", {"name": 42})
    assert table.get("s", "name") == "text"
    assert table.get("b", "name") == b"\x00bin"
    assert table.get("n", "name") == "42"


def test_keys_up_to_63_bytes_longer_or_empty_refused(caplog: pytest.LogCaptureFixture) -> None:
    table = make()
    key63 = "k" * 63
    assert table.set(key63, {"id": 1})
    assert table.get(key63, "id") == 1
    with caplog.at_level(logging.WARNING, logger="pyswoole"):
        assert table.set("k" * 64, {"id": 2}) is False
        assert table.get("k" * 64) is None
        assert table.exists("k" * 64) is False
        assert table.incr("k" * 64, "id") is False
        assert table.delete("k" * 64) is False
        assert table.set("", {"id": 1}) is False
    assert "exceeds the limit of 63 bytes" in caplog.text
    assert "must not be empty" in caplog.text
    assert table.count() == 1


def test_bytes_int_and_unicode_keys() -> None:
    table = make()
    table.set(b"\x00\xffbin", {"id": 1})
    table.set(42, {"id": 2})  # PHP makes an int key its decimal string
    table.set("ключ", {"id": 3})
    assert table.get(b"\x00\xffbin", "id") == 1
    assert table.get("42", "id") == 2
    assert table.get(42, "id") == 2
    assert table.get("ключ".encode(), "id") == 3  # the same bytes are the same key
    assert dict(table.items()).keys() == {b"\x00\xffbin", "42", "ключ"}
    with pytest.raises(TypeError):
        table.get(1.5)  # type: ignore[call-overload]


def test_exists_delete_and_dict_protocol() -> None:
    table = make()
    table["a"] = {"id": 1}
    assert table.exists("a") and table.exist("a") and "a" in table
    assert "b" not in table and 3.5 not in table and True not in table
    assert table.delete("a") is True
    assert table.delete("a") is False
    assert table.del_("a") is False
    table["b"] = {"id": 2}
    del table["b"]
    assert "b" not in table
    with pytest.raises(KeyError):
        del table["b"]


def test_incr_decr_int_and_float_create_the_row() -> None:
    table = make()
    assert table.incr("c", "id") == 1  # a missing row is created with zero values
    assert table.get("c") == {"id": 1, "name": "", "score": 0.0}
    assert table.incr("c", "id", 10) == 11
    assert table.decr("c", "id") == 10
    assert table.decr("c", "id", 15) == -5
    assert table.incr("c", "id", 2.9) == -3  # zval_get_long: truncated to 2
    assert table.incr("c", "score", 0.25) == 0.25
    assert table.decr("c", "score", 1) == -0.75
    assert isinstance(table.decr("c", "score", 1), float)
    assert table.decr("new", "score", 1.5) == -1.5
    table.set("max", {"id": 2**63 - 1})
    assert table.incr("max", "id") == -(2**63)  # a C long wraps


def test_incr_on_a_string_or_unknown_column_raises() -> None:
    table = make()
    with pytest.raises(TypeError, match="string"):
        table.incr("k", "name")
    with pytest.raises(KeyError):
        table.decr("k", "nope")
    assert "k" not in table


def test_count_len_iteration_and_keys() -> None:
    table = make()
    rows = {f"key{i}": {"id": i, "name": f"n{i}", "score": i / 2} for i in range(300)}
    for key, row in rows.items():
        assert table.set(key, row)
    assert table.count() == len(table) == 300
    assert dict(table) == rows
    assert sorted(table.keys()) == sorted(rows)  # type: ignore[type-var]
    for key in list(rows)[:100]:
        table.delete(key)
    assert len(table) == 200
    assert dict(iter(table)) == {k: v for k, v in list(rows.items())[100:]}


def test_a_full_table_refuses_new_rows_logs_once_and_keeps_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    table = Table(64)
    table.column("v", Table.TYPE_INT)
    table.create()
    stored = {}
    with caplog.at_level(logging.WARNING, logger="pyswoole"):
        for i in range(500):
            if table.set(f"k{i}", {"v": i}):
                stored[f"k{i}"] = i
    assert len(stored) < 500
    assert len(stored) <= 64 + 12 == 76
    assert caplog.text.count("unable to allocate memory") == 1
    assert table.stats()["available_slice_num"] == 0
    assert {k: r["v"] for k, r in table} == stored  # no row was damaged
    assert all(table.get(k, "v") == v for k, v in stored.items())
    key = next(iter(stored))
    assert table.set(key, {"v": -1})  # updating an existing row still works
    assert table.incr(f"absent{len(stored)}", "v") in (1, False)
    # freeing rows gives room back
    for k in list(stored)[:20]:
        table.delete(k)
    assert sum(table.set(f"again{i}", {"v": i}) for i in range(200)) >= 8


def test_stats_keys_and_counters() -> None:
    table = make(64)
    for i in range(40):
        table.set(f"k{i}", {"id": i})
    table.set("k0", {"id": 100})
    table.incr("k1", "id")
    table.delete("k2")
    stats = table.stats()
    assert list(stats) == [
        "num",
        "conflict_count",
        "conflict_max_level",
        "insert_count",
        "update_count",
        "delete_count",
        "available_slice_num",
        "total_slice_num",
    ]
    assert stats["num"] == 39
    assert stats["insert_count"] == 40
    assert stats["update_count"] == 2
    assert stats["delete_count"] == 1
    assert stats["total_slice_num"] == 12
    used = stats["conflict_count"]  # pool rows taken; the delete may have given one back
    assert stats["available_slice_num"] in (12 - used, 12 - used + 1)
    assert stats["conflict_count"] >= 1  # 40 keys in 64 buckets collide somewhere
    assert stats["conflict_max_level"] >= 1


def test_deleting_a_bucket_row_with_a_chain_keeps_the_chained_rows() -> None:
    table = Table(64, 1.0)
    table.column("v", Table.TYPE_INT)
    table.create()
    for i in range(64 * 2):
        table.set(f"k{i}", {"v": i})
    present = {k: r["v"] for k, r in table}
    for key in list(present)[::3]:  # bucket heads and chained rows alike
        assert table.delete(key)
        del present[key]
        assert {k: r["v"] for k, r in table} == present
    assert all(table.get(k, "v") == v for k, v in present.items())
    assert table.count() == len(present)


def test_schema_errors() -> None:
    table = Table(64)
    with pytest.raises(ValueError):
        table.column("s", Table.TYPE_STRING)  # size 0
    with pytest.raises(ValueError):
        table.column("x", 9)
    table.column("a", Table.TYPE_INT)
    with pytest.raises(ValueError):
        table.column("a", Table.TYPE_FLOAT)
    with pytest.raises(ServerStateError):
        table.get("k")
    table.create()
    with pytest.raises(ServerStateError):
        table.column("b", Table.TYPE_INT)
    with pytest.raises(ServerStateError):
        table.create()
    assert table.destroy() is True
    with pytest.raises(ServerStateError):
        table.set("k", {"a": 1})
    with pytest.raises(ValueError):
        Table(0)


def test_setitem_on_a_full_table_raises() -> None:
    table = Table(64)
    table.column("v", Table.TYPE_INT)
    table.create()
    with pytest.raises(SwooleError):
        for i in range(1000):
            table[f"k{i}"] = {"v": i}


def test_threads_of_one_process_incr_exactly() -> None:
    table = make()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(2000):
                table.incr("n", "id")
                table.incr("f", "score", 0.5)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert table.get("n", "id") == 8000
    assert table.get("f", "score") == 4000.0


def test_repr() -> None:
    table = make(64)
    table.set("a", {"id": 1})
    assert repr(table) == "<Table size=64 columns=['id', 'name', 'score'] 1 rows>"
    assert "not created" in repr(Table(64))


def test_uncommon_arguments_take_the_python_path_with_the_same_result() -> None:
    """The compiled core answers the common cases and leaves the rest (non-dict mappings,
    str subclasses, values needing a conversion) to the Python code: same table either way."""
    from types import MappingProxyType

    class Name(str):
        pass

    table = make()
    assert table.set(Name("sub"), MappingProxyType({"id": True, "name": 5, "score": "2.5"}))
    assert table.get("sub") == {"id": 1, "name": "5", "score": 2.5}
    assert table.get(Name("sub"), Name("id")) == 1
    assert table.incr(Name("sub"), "id", True) == 2
    assert table.incr("sub", "score", 1) == 3.5
    assert table.exists(bytearray(b"sub"))
    assert table.get(memoryview(b"sub"), "id") == 2
    assert table.delete(Name("sub"))


def test_the_compiled_core_is_used_when_built() -> None:
    from pyswoole.memory.table import SPEEDUPS

    table = make()
    assert (table._core is not None) is SPEEDUPS


def test_a_reader_thread_never_sees_a_row_a_writer_thread_is_writing() -> None:
    table = Table(64)
    table.column("a", Table.TYPE_INT)
    table.column("b", Table.TYPE_INT)
    table.column("s", Table.TYPE_STRING, 24)
    table.create()
    table.set("k", {"a": 0, "b": 0, "s": "0"})
    stop = threading.Event()
    bad: list[object] = []

    def writer() -> None:
        for i in range(1, 3_000):
            table.set("k", {"a": i, "b": -i, "s": str(i) * 3})
        stop.set()

    def reader() -> None:
        while not stop.is_set():
            row = table.get("k")
            if row is None or row["b"] != -row["a"] or row["s"] != str(row["a"]) * 3:  # type: ignore[operator]
                bad.append(row)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not bad
    assert table.get("k") == {"a": 2_999, "b": -2_999, "s": "2999" * 3}
