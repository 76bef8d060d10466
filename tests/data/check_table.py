"""`cohort data csv|jsonl`: a table of small inputs, each converted by the real command and read
back with h5py: the exact rows (features and labels, in order, train + val), the class names,
the messages and the exit codes. Exit 77 when h5py is missing.
usage: check_table.py COHORT_BINARY"""
import os
import subprocess
import sys
import tempfile

try:
    import h5py
    import numpy as np
except ImportError:
    print("h5py not available: skipped")
    sys.exit(77)

BOM = "\ufeff"
WINE = "".join(f"{i % 3 + 1},{1.5 + i},{1000 + 7 * i}\n" for i in range(25))
IDS = [f"id{i}" for i in range(30)]  # byte order: id0, id1, id10, ...
SPLIT = "".join(f"{i},{i % 2}\n" for i in range(10))

# (name, format, input text, arguments, expected): expected is a dict with the rows x and labels
# y (train then val, both in file order; with --val-fraction 0 all rows are in train), names
# (None: no /class_names) and out/err substrings; or ("error", exit code, substrings).
V0 = ["--val-fraction", "0"]
CASES = [
    # header: auto, yes, no
    ("header_auto_yes", "csv", "a,b,label\n1,2,0\n3,4,1\n", V0,
     dict(x=[[1, 2], [3, 4]], y=[0, 1], out=["header: yes (auto: line 1 has 'a' in column 1"])),
    ("header_auto_no", "csv", "1,2,0\n3,4,1\n", V0,
     dict(x=[[1, 2], [3, 4]], y=[0, 1], out=["header: no (auto"])),
    ("row1_missing_is_data", "csv", "1,,0\n3,4,1\n", V0 + ["--fill", "0"],
     dict(x=[[1, 0], [3, 4]], y=[0, 1], out=["header: no (auto", "filled    1 missing values with 0"])),
    ("row1_missing_error", "csv", "1,,0\n3,4,1\n", V0,
     ("error", 2, ["{f}:1: column 2: missing value (empty); --fill VALUE"])),
    ("row1_string_label_is_data", "csv", "5,1,virginica\n6,2,setosa\n7,3,versicolor\n8,4,setosa\n", V0,
     dict(x=[[5, 1], [6, 2], [7, 3], [8, 4]], y=[2, 0, 1, 0], names=["setosa", "versicolor", "virginica"],
          out=["header: no (auto", "string labels"])),
    ("header_and_string_labels", "csv", "sepal,petal,species\n5,1,b\n6,2,a\n", V0,
     dict(x=[[5, 1], [6, 2]], y=[1, 0], names=["a", "b"], out=["header: yes (auto: line 1 has 'sepal'"])),
    ("header_missing_below", "csv", "a,b,species\n,,setosa\n5,6,setosa\n", V0 + ["--fill", "0"],
     dict(x=[[0, 0], [5, 6]], y=[0, 0], names=["setosa"],
          out=["header: yes (auto: line 1 has 'a' in column 1 where line 3 has a number"])),
    ("data_missing_rows_1_2", "csv", "1,,x\n2,,y\n3,4,z\n", V0 + ["--fill", "-1"],
     dict(x=[[1, -1], [2, -1], [3, 4]], y=[0, 1, 2], names=["x", "y", "z"], out=["header: no (auto"])),
    ("header_lookahead_limit", "csv", "a,b\n" + ",x\n" * 70, V0 + ["--fill", "0"],
     ("error", 2, ["header: no (auto", "{f}:1: column 1: 'a' is not a number"])),
    ("header_yes_numeric_row", "csv", "1,2,3\n4,5,0\n", V0 + ["--header", "yes"],
     dict(x=[[4, 5]], y=[0], out=["header: yes (--header yes"])),
    ("header_no_text_row", "csv", "a,b,y\n1,2,0\n", V0 + ["--header", "no"],
     ("error", 2, ["header: no (--header no)", "{f}:1: column 1: 'a' is not a number"])),
    ("header_bad_value", "csv", "1,2,0\n", ["--header", "maybe"], ("error", 2, ["not yes, no or auto"])),
    # byte order mark, line ends
    ("bom_no_header", "csv", BOM + "1,2,0\n3,4,1\n", V0, dict(x=[[1, 2], [3, 4]], y=[0, 1])),
    ("bom_header", "csv", BOM + "y,a,b\n0,1,2\n1,3,4\n", V0 + ["--label-column", "y"],
     dict(x=[[1, 2], [3, 4]], y=[0, 1], out=["header: yes"])),
    ("crlf", "csv", "a,b,y\r\n1,2,0\r\n3,4,1\r\n", V0, dict(x=[[1, 2], [3, 4]], y=[0, 1])),
    ("cr_only", "csv", "1,2,0\r3,4,1\r5,6,1", V0, dict(x=[[1, 2], [3, 4], [5, 6]], y=[0, 1, 1])),
    ("cr_only_header", "csv", "a,b,y\r1,2,0\r3,4,1\r", V0, dict(x=[[1, 2], [3, 4]], y=[0, 1])),
    ("blank_lines", "csv", "\n1,2,0\n  \n\n3,4,1\n\n", V0, dict(x=[[1, 2], [3, 4]], y=[0, 1])),
    # RFC 4180 quoting
    ("quoted", "csv", '"1.5", "2" ,"cat, big"\n3,"4","dog ""d"""\n', V0,
     dict(x=[[1.5, 2], [3, 4]], y=[0, 1], names=["cat, big", 'dog "d"'])),
    ("quoted_newline", "csv", 'x1,x2,y\n1,2,"multi\nline"\n3,4,plain\n5,6,"multi\r\nline"\n', V0,
     dict(x=[[1, 2], [3, 4], [5, 6]], y=[0, 1, 0], names=["multi\nline", "plain"])),
    ("quote_never_closes", "csv", '1,2,0\n3,"4,1\n', V0, ("error", 2, ["{f}:2: column 2: the quoted field never closes"])),
    # label column: index, negative, name, continuous
    ("label_first", "csv", "0,1,2\n1,3,4\n", V0 + ["--label-column", "0"], dict(x=[[1, 2], [3, 4]], y=[0, 1])),
    ("label_negative", "csv", "0,1,2\n1,3,4\n", V0 + ["--label-column", "-3"], dict(x=[[1, 2], [3, 4]], y=[0, 1])),
    ("label_by_name", "csv", "a,cls,b\n1,0,2\n3,1,4\n", V0 + ["--label-column", "cls"],
     dict(x=[[1, 2], [3, 4]], y=[0, 1], out=["label     column 1 ('cls')"])),
    ("label_name_no_header", "csv", "1,2,0\n", V0 + ["--label-column", "y"],
     ("error", 2, ["--label-column 'y' is a column name, but the file has no header"])),
    ("label_name_unknown", "csv", "a,b,y\n1,2,0\n", V0 + ["--label-column", "z"],
     ("error", 2, ["--label-column 'z' is not a column of the header on line 1: 'a', 'b', 'y'"])),
    ("label_out_of_range", "csv", "1,2,0\n", V0 + ["--label-column", "3"], ("error", 2, ["label column 3 is out of range"])),
    ("wine_without_label_column", "csv", WINE, V0,
     dict(x=[[i % 3 + 1, 1.5 + i] for i in range(25)], y=[1000 + 7 * i for i in range(25)],
          err=["warning: the label column (--label-column 2) looks continuous", "25 distinct values in 25 rows, 1169 classes"])),
    ("wine_label_column_0", "csv", WINE, V0 + ["--label-column", "0"],
     dict(x=[[1.5 + i, 1000 + 7 * i] for i in range(25)], y=[i % 3 + 1 for i in range(25)], noerr=["warning"])),
    ("label_not_integer", "csv", "1,2,0\n3,4,0.5\n", V0,
     ("error", 2, ["{f}:2: column 3: label '0.5' is not an integer: the column looks continuous"])),
    ("label_negative_value", "csv", "1,2,0\n3,4,-1\n", V0, ("error", 2, ["{f}:2: column 3: label '-1' is negative"])),
    # missing values
    ("fill_tokens", "csv", "1,NA,0\n?,2,1\nnan,3,0\n4,N/A,1\n", V0 + ["--fill", "9"],
     dict(x=[[1, 9], [9, 2], [9, 3], [4, 9]], y=[0, 1, 0, 1], out=["filled    4 missing values with 9"])),
    ("missing_token_error", "csv", "a,b,y\n1,2,0\n3,NA,1\n", V0,
     ("error", 2, ["{f}:3: column 2 ('b'): missing value ('NA'); --fill VALUE replaces missing values"])),
    ("missing_label", "csv", "1,2,0\n3,4,\n", V0 + ["--fill", "0"],
     ("error", 2, ["{f}:2: column 3: the label is missing (rows are never dropped"])),
    ("fill_not_number", "csv", "1,2,0\n", ["--fill", "x"], ("error", 2, ["--fill: 'x' is not a finite number"])),
    # other rejected inputs
    ("not_a_number", "csv", "1,2,0\n3,x4,1\n", V0, ("error", 2, ["{f}:2: column 2: 'x4' is not a number"])),
    ("ragged", "csv", "1,2,0\n3,4\n", V0, ("error", 2, ["{f}:2: expected 3 columns, found 2"])),
    ("semicolons", "csv", "1;2;0\n3;4;1\n", V0,
     ("error", 2, ["{f}:1: found 1 column; need at least 2 (features and a label); the separator looks like ';'"])),
    ("empty_file", "csv", "", V0, ("error", 2, ["{f}: no data rows: the file is empty or blank"])),
    ("only_header", "csv", "a,b,c\n", V0, ("error", 2, ["{f}: no data rows: only the header on line 1"])),
    # the split: every row lands in train or val, each split in file order
    ("split_default", "csv", SPLIT, [], dict(x=[[i] for i in range(10)], y=[i % 2 for i in range(10)], val=2,
                                             out=["rows      10 read, 10 written (train 8, val 2)"])),
    # JSON Lines: the same tables
    ("jsonl_objects", "jsonl", '{"a":1,"b":2,"y":"cat"}\n{"b":4,"a":3,"y":"dog"}\n', V0,
     dict(x=[[1, 2], [3, 4]], y=[0, 1], names=["cat", "dog"], out=["header: yes (the keys of the JSON objects"])),
    ("jsonl_quoted_numbers", "jsonl", '{"a":"1.5","y":0}\n{"a":3,"y":"1"}\n', V0, dict(x=[[1.5], [3]], y=[0, 1])),
    ("jsonl_missing_fill", "jsonl", BOM + '{"a":1,"b":null,"y":0}\r\n{"a":3,"y":1}\r\n', V0 + ["--fill", "-1"],
     dict(x=[[1, -1], [3, -1]], y=[0, 1], out=["filled    2"])),
    ("jsonl_missing_error", "jsonl", '{"a":1,"b":null,"y":0}\n', V0,
     ("error", 2, ["{f}:1: column 2 ('b'): missing value (null or no key)"])),
    ("jsonl_extra_key", "jsonl", '{"a":1,"y":0}\n{"a":1,"y":0,"z":3}\n', V0,
     ("error", 2, ["{f}:2: key 'z' is not a column (the columns are the keys of the first object, line 1)"])),
    ("jsonl_label_by_name", "jsonl", '{"y":0,"a":1}\n{"y":1,"a":2}\n', V0 + ["--label-column", "y"],
     dict(x=[[1], [2]], y=[0, 1])),
    ("jsonl_arrays", "jsonl", '[1,2,"x"]\n\n[3,4,"y"]\n', V0, dict(x=[[1, 2], [3, 4]], y=[0, 1], names=["x", "y"])),
    ("jsonl_arrays_header", "jsonl", '["a","b","y"]\n[1,2,0]\n', V0,
     dict(x=[[1, 2]], y=[0], out=["header: yes (auto"])),
    ("jsonl_invalid", "jsonl", '{"a":1,"y":0}\n{"a":1,\n', V0, ("error", 2, ["{f}:2:", "not valid JSON"])),
    ("jsonl_two_values", "jsonl", '{"a":1,"y":0} {"a":2,"y":1}\n', V0, ("error", 2, ["{f}:1:", "not valid JSON"])),
    ("jsonl_trailing_blanks", "jsonl", '{"a":1,"y":0}  \t\n[', V0, ("error", 2, ["{f}:2:", "not valid JSON"])),
    ("string_ids_warn", "csv", "".join(f"{i},id{i}\n" for i in range(30)), V0,
     dict(x=[[i] for i in range(30)], y=[sorted(IDS).index(n) for n in IDS], names=sorted(IDS),
          err=["looks like an id, not a class: 30 distinct values in 30 rows"])),
    ("jsonl_duplicate_key", "jsonl", '{"a":1,"y":0}\n{"a":1,"y":0,"a":2}\n', V0, ("error", 2, ["{f}:2: key 'a' appears twice"])),
    ("jsonl_bool", "jsonl", '{"a":true,"y":0}\n', V0, ("error", 2, ["{f}:1: column 1 ('a'): true/false is not a value"])),
    ("jsonl_mixed", "jsonl", '{"a":1,"y":0}\n[1,0]\n', V0, ("error", 2, ["{f}:2: an array, but the lines before hold objects"])),
    ("jsonl_header_option", "jsonl", '{"a":1,"y":0}\n', V0 + ["--header", "yes"],
     ("error", 2, ["--header does not apply: the keys of the JSON objects name the columns"])),
    ("jsonl_wine", "jsonl", "".join(f"[{i % 3 + 1},{1.5 + i},{1000 + 7 * i}]\n" for i in range(25)), V0,
     dict(x=[[i % 3 + 1, 1.5 + i] for i in range(25)], y=[1000 + 7 * i for i in range(25)], err=["looks continuous"])),
]


def subsequence(rows, want):
    it = iter(want)
    return all(any(r == w for w in it) for r in rows)


def run_case(cohort, d, case):
    name, fmt, text, args, want = case
    src = os.path.join(d, f"{name}.{fmt}")
    out = os.path.join(d, f"{name}.h5")
    with open(src, "wb") as f:
        f.write(text.encode())
    p = subprocess.run([cohort, "data", fmt, src, out] + args, capture_output=True, text=True)
    report = f"{name}: exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    if isinstance(want, tuple):
        _, code, needles = want
        assert p.returncode == code, report
        for n in needles:
            assert n.format(f=src) in p.stdout + p.stderr, f"{report}\nlacks: {n.format(f=src)}"
        assert not os.path.exists(out) and not os.path.exists(out + ".partial"), f"{name}: output left behind"
        return
    assert p.returncode == 0, report
    for n in want.get("out", []):
        assert n in p.stdout, f"{report}\nstdout lacks: {n}"
    for n in want.get("err", []):
        assert n in p.stderr, f"{report}\nstderr lacks: {n}"
    for n in want.get("noerr", []):
        assert n not in p.stderr, f"{report}\nstderr has: {n}"
    with h5py.File(out, "r") as h:
        xs = [h[s + "/x"][...] for s in ("train", "val")]
        ys = [h[s + "/y"][...] for s in ("train", "val")]
        wx = np.asarray(want["x"], dtype=np.float32)
        wy = np.asarray(want["y"], dtype=np.int32)
        assert all(x.dtype == np.float32 for x in xs) and all(y.dtype == np.int32 for y in ys), name
        assert xs[1].shape[0] == want.get("val", 0), f"{name}: {xs[1].shape[0]} val rows"
        rows = [(tuple(x), int(y)) for s in range(2) for x, y in zip(xs[s].tolist(), ys[s].tolist())]
        wrows = [(tuple(x), int(y)) for x, y in zip(wx.tolist(), wy.tolist())]
        if want.get("val", 0) == 0:
            assert rows == wrows, f"{name}: rows {rows}\nexpected {wrows}"
        else:
            assert sorted(rows) == sorted(wrows), f"{name}: rows {rows}\nexpected {wrows}"
            for s in range(2):
                part = [(tuple(x), int(y)) for x, y in zip(xs[s].tolist(), ys[s].tolist())]
                assert subsequence(part, wrows), f"{name}: split {s} not in file order"
        names = want.get("names")
        assert int(h.attrs["num_features"]) == wx.shape[1], name
        if names is None:
            assert "class_names" not in h, f"{name}: unexpected /class_names"
            assert int(h.attrs["num_classes"]) == int(wy.max()) + 1, name
        else:
            got = [n.decode() for n in h["class_names"][...]]
            assert got == names, f"{name}: class names {got}, expected {names}"
            assert int(h.attrs["num_classes"]) == len(names), name


def main():
    cohort = sys.argv[1]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="cohort_test_table_") as d:
        for case in CASES:
            try:
                run_case(cohort, d, case)
            except AssertionError as e:
                failed += 1
                print(f"FAIL {e}")
    print(f"check_table: {len(CASES) - failed}/{len(CASES)} cases ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
