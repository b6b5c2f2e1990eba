#!/usr/bin/env python3
"""Dump the SQL names a ClickHouse server lists in its own catalogues.

wasmhouse lets untrusted guests send SQL to ClickHouse and allows only names
it knows to be safe. The classification files next to this script
(function.tsv, setting.tsv, ...) must cover every name both supported
servers (ClickHouse 18.16 and 26.9 via chdb) list; this script produces
those names so the files can be made and checked against a server.

Usage:
    python3 dump.py chdb                       # in-process chdb
    python3 dump.py http://127.0.0.1:8123/     # a server's HTTP interface

Prints one line per entry, `<catalog>\t<name>`, deduplicated and sorted, for
the catalogs function, combinator, table_function, table_engine,
database_engine, system_table, data_type, codec, keyword, setting and
index_type. A catalog whose system table the server lacks is skipped.
User-defined functions are left out. Standard library only (plus chdb).
"""

import sys
import urllib.parse
import urllib.request

# catalog -> (system table, column holding the name, extra WHERE condition)
CATALOGS = [
    ("function", "functions", "name", None),
    ("combinator", "aggregate_function_combinators", "name", None),
    ("table_function", "table_functions", "name", None),
    ("table_engine", "table_engines", "name", None),
    ("database_engine", "database_engines", "name", None),
    ("system_table", "tables", "name", "database = 'system'"),
    ("data_type", "data_type_families", "name", None),
    ("codec", "codecs", "name", None),
    ("keyword", "keywords", "keyword", None),
    ("setting", "settings", "name", None),
    ("index_type", "data_skipping_index_types", "name", None),
]


def http_runner(base):
    if not base.endswith("/"):
        base += "/"

    def run(sql):
        req = urllib.request.Request(base, data=sql.encode("utf-8"), method="POST")
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.read().decode("utf-8")

    return run


def chdb_runner():
    from chdb import session  # imported only when asked for

    sess = session.Session()

    def run(sql):
        res = sess.query(sql, "TabSeparatedRaw")
        return res.bytes().decode("utf-8") if hasattr(res, "bytes") else str(res)

    return run


def lines(text):
    return [line for line in text.split("\n") if line != ""]


def dump(run):
    tables = set(
        lines(run("SELECT name FROM system.tables WHERE database = 'system' FORMAT TabSeparatedRaw"))
    )
    out = set()
    for catalog, table, column, where in CATALOGS:
        if table not in tables:
            continue
        conds = [where] if where else []
        if table == "functions":
            cols = set(
                lines(
                    run(
                        "SELECT name FROM system.columns WHERE database = 'system' "
                        "AND table = 'functions' FORMAT TabSeparatedRaw"
                    )
                )
            )
            if "origin" in cols:
                conds.append("origin = 'System'")
        sql = "SELECT DISTINCT {} FROM system.{}".format(column, table)
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        sql += " FORMAT TabSeparatedRaw"
        for name in lines(run(sql)):
            out.add((catalog, name))
    return sorted(out, key=lambda e: (e[0].encode("utf-8"), e[1].encode("utf-8")))


def main(argv):
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    target = argv[1]
    if target == "chdb":
        run = chdb_runner()
    elif target.startswith("http://") or target.startswith("https://"):
        run = http_runner(target)
    else:
        sys.stderr.write("target must be `chdb` or an http(s):// URL\n")
        return 2
    out = sys.stdout.buffer
    for catalog, name in dump(run):
        out.write("{}\t{}\n".format(catalog, name).encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
