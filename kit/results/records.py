"""Typed results and the JSON they are written as. A record is a frozen dataclass whose to_json() gives the
dict the tables' JSON files hold (its fields by name, nested records, lists and dicts made plain), so the
files stay as they were while the code passes typed values between modules."""
import json
from dataclasses import fields


class Record:
    """Base of the read side's dataclasses: to_json() is {field: plain(value)}; override it to rename or drop."""

    def to_json(self):
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}


def plain(value):
    """value with every record in it replaced by its to_json() (lists and tuples become lists)."""
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def dumps(value, indent=2):
    """The JSON text of a record (or of a dict or list holding records): sorted keys, a final newline."""
    return json.dumps(plain(value), indent=indent, sort_keys=True) + "\n"
