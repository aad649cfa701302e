"""The four output manifests of a built corpus (sources, clips, shards, failures).

Each is written as parquet and csv with the same rows and the columns of
`schema.MANIFEST_FIELDS` (and those of `schema.OPTIONAL_FIELDS` that its rows have), atomically (a
temporary file renamed into place), and byte-for-byte reproducible: no timestamps, no pandas index
metadata, rows in the order given. Parquet holds the exact text; in the csv, a text cell that a
spreadsheet would run as a formula is written with a `'` in front (`csv_text.to_cell`), which
`read_manifest_csv` takes off again.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from landscape_av.csv_text import from_cell, to_cell
from landscape_av.files import atomic_path
from landscape_av.schema import (
    MANIFEST_DIR,
    MANIFEST_FIELDS,
    MANIFESTS,
    manifest_columns,
    manifest_fields,
)

if TYPE_CHECKING:
    import pandas as pd

_ARROW_TYPES = {"str": pa.string(), "int": pa.int64(), "float": pa.float64()}
_EMPTY = {"str": "", "int": 0, "float": math.nan}


def arrow_schema(name: str, optional: Collection[str] = ()) -> pa.Schema:
    """pyarrow schema of manifest `name`, with the optional columns named in `optional`."""
    _check_name(name)
    fields = manifest_fields(name, optional)
    return pa.schema([(column, _ARROW_TYPES[kind]) for column, kind in fields])


def manifest_path(corpus_dir: Path, name: str, fmt: str = "parquet") -> Path:
    """`OUT/manifests/<name>.<fmt>` (fmt: parquet or csv)."""
    _check_name(name)
    return Path(corpus_dir) / MANIFEST_DIR / f"{name}.{fmt}"


def write_manifest(corpus_dir: Path, name: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write `rows` (dicts with exactly the manifest's columns, and the same optional ones:
    `schema.OPTIONAL_FIELDS`; missing values may be None) as `<name>.parquet` and `<name>.csv`,
    each atomically."""
    optional = set(rows[0]) if rows else set()
    schema = arrow_schema(name, optional)
    kinds = dict(manifest_fields(name, optional))
    columns = manifest_columns(name, optional)
    for i, row in enumerate(rows):
        extra, missing = set(row) - set(columns), set(columns) - set(row)
        if extra or missing:
            raise ValueError(
                f"{name} manifest row {i}: unexpected columns {sorted(extra)}, "
                f"missing {sorted(missing)}"
            )
    data = {c: [_EMPTY[kinds[c]] if row[c] is None else row[c] for row in rows] for c in columns}
    table = pa.Table.from_pydict(data, schema=schema)
    folder = Path(corpus_dir) / MANIFEST_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(manifest_path(corpus_dir, name, "parquet")) as tmp:
        pq.write_table(table, tmp)
    text = {c: [to_cell(v) for v in data[c]] for c in columns if kinds[c] == "str"}
    with atomic_path(manifest_path(corpus_dir, name, "csv")) as tmp:
        pacsv.write_csv(pa.Table.from_pydict(data | text, schema=schema), tmp)


def read_manifest_csv(path: Path, name: str, optional: Collection[str] = ()) -> pd.DataFrame:
    """The rows of the csv of manifest `name` at `path` (with the optional columns named in
    `optional`), its text as the parquet holds it (the `'` that keeps a formula from running taken
    off); raises ValueError for a malformed file."""
    types = pacsv.ConvertOptions(column_types=arrow_schema(name, optional))
    rows = pacsv.read_csv(path, convert_options=types).to_pandas()
    for column, kind in manifest_fields(name, optional):
        if kind == "str" and column in rows:
            rows[column] = rows[column].map(from_cell)
    return rows


def read_manifest_table(corpus_dir: Path, name: str) -> pd.DataFrame:
    """Read manifest `name` of a built corpus (parquet) as a DataFrame with the schema's columns."""
    path = manifest_path(corpus_dir, name, "parquet")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: is {corpus_dir} a built corpus?")
    table = pq.read_table(path)
    expected = manifest_columns(name, table.column_names)
    if tuple(table.column_names) != expected:
        raise ValueError(f"{path}: columns {table.column_names} differ from {list(expected)}")
    return table.to_pandas()


def _check_name(name: str) -> None:
    if name not in MANIFEST_FIELDS:
        raise ValueError(f"unknown manifest {name!r}; expected one of {', '.join(MANIFESTS)}")
