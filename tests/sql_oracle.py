"""How a real ClickHouse reads queries, for tests/sql_reading.rs.

    python3 tests/sql_oracle.py chdb                    # ClickHouse 26.9 in-process
    python3 tests/sql_oracle.py http://127.0.0.1:PORT/  # a server's HTTP interface

Reads one query per line on stdin, each a JSON string, and answers each on
stdout with one JSON line: {"names": [...], "data": [[...]]} from the
server's JSONCompact output, or {"error": "<first line of the error>"}.
Names are decoded as UTF-8 (invalid bytes replaced), values as JSON.
"""

import json
import sys
import urllib.error
import urllib.request


def answer(raw):
    if not raw.strip():
        # A statement with no result (KILL, INSERT): done, no rows.
        return {"names": [], "data": []}
    try:
        doc = json.loads(raw.decode("utf-8", errors="replace"))
    except ValueError as err:
        return {"error": "unreadable answer: %s" % err}
    return {"names": [m["name"] for m in doc["meta"]], "data": doc["data"]}


def first_line(text):
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def main():
    target = sys.argv[1]
    if target == "chdb":
        from chdb import session

        s = session.Session()

        def run(query):
            try:
                result = s.query(query, "JSONCompact")
            except Exception as err:  # chdb raises on server errors
                return {"error": first_line(str(err))}
            return answer(result.bytes())
    else:
        url = target + "?output_format_json_quote_64bit_integers=0&default_format=JSONCompact"

        def run(query):
            try:
                with urllib.request.urlopen(url, data=query.encode("utf-8"), timeout=30) as reply:
                    return answer(reply.read())
            except urllib.error.HTTPError as err:
                return {"error": first_line(err.read().decode("utf-8", errors="replace"))}

    for line in sys.stdin:
        query = json.loads(line)
        print(json.dumps(run(query)))
        sys.stdout.flush()


main()
