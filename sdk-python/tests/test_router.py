"""The Python SDK's router under CPython: matching, parameters from type
hints and their rules, the 404/405/422 answers and the OpenAPI document.
Run with `python3 -m unittest discover -s sdk-python/tests` (the suite's
`tests/python_sdk.rs` does)."""

import datetime
import os
import sys
import unittest
from typing import Literal, Optional

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from wasmhouse import App, Body, HTTPException, JSONResponse, Path, Query, QueryError, Request, sql_value  # noqa: E402


def get(app, target, method="GET", body=b""):
    path, _, query = target.partition("?")
    return app.handle(Request(method, path, query, body=lambda: body))


def build():
    app = App(title="t", version="2.0.0")

    @app.get("/numbers")
    def numbers(limit: int = Query(10, ge=1, le=1000, description="How many"), offset: int = Query(0, ge=0)):
        """Numbers, a page at a time.

        Longer words."""
        return {"limit": limit, "offset": offset}

    @app.get("/hello/{name}")
    def hello(name: str = Path(max_length=5)):
        return {"greeting": f"Hello, {name}!"}

    @app.get("/users/{user_id}/events")
    def events(
        user_id: int,
        since: Optional[datetime.date] = None,
        kind: Literal["click", "view"] = "click",
        verbose: bool = False,
        at: Optional[datetime.datetime] = None,
        ratio: float = Query(0.5, gt=0, lt=1),
    ):
        return {"user": user_id, "since": since, "kind": kind, "verbose": verbose, "at": at, "ratio": ratio}

    @app.get("/need")
    def need(q: str):
        return q

    @app.post("/events")
    def add(event: dict = Body(), request: Request = None):
        if "user" not in event:
            raise HTTPException(400, "an event names its user")
        return JSONResponse({"stored": event["user"], "method": request.method}, 201)

    @app.get("/broken")
    def broken():
        raise QueryError(503, "clickhouse_unavailable", "ClickHouse unavailable: connection refused")

    return app


class Routing(unittest.TestCase):
    def setUp(self):
        self.app = build()

    def test_defaults_and_values(self):
        self.assertEqual(get(self.app, "/numbers").json(), {"limit": 10, "offset": 0})
        self.assertEqual(get(self.app, "/numbers?limit=3&offset=7").json(), {"limit": 3, "offset": 7})
        self.assertEqual(get(self.app, "/numbers?limit=+3").json()["limit"], 3)

    def test_rules_answer_422_naming_the_parameter(self):
        for target, parameter, rule in [
            ("/numbers?limit=5000", "limit", "must be at most 1000"),
            ("/numbers?limit=0", "limit", "must be at least 1"),
            ("/numbers?limit=abc", "limit", "must be an integer"),
            ("/numbers?limit=", "limit", "must be an integer"),
            ("/numbers?limit=1.5", "limit", "must be an integer"),
            ("/numbers?offset=-1", "offset", "must be at least 0"),
            ("/hello/abcdef", "name", "must be at most 5 characters"),
            ("/users/x/events", "user_id", "must be an integer"),
            ("/users/1/events?since=2024-02-30", "since", "day 30 does not exist in 2024-02"),
            ("/users/1/events?since=2024-13-01", "since", "month 13 does not exist"),
            ("/users/1/events?since=yesterday", "since", "must be a date, YYYY-MM-DD"),
            ("/users/1/events?kind=buy", "kind", "must be one of click, view"),
            ("/users/1/events?verbose=maybe", "verbose", "must be true or false"),
            ("/users/1/events?ratio=1", "ratio", "must be less than 1"),
            ("/users/1/events?ratio=0", "ratio", "must be more than 0"),
            ("/users/1/events?ratio=NaN", "ratio", "must be a number"),
            ("/users/1/events?ratio=inf", "ratio", "must be a number"),
            ("/users/1/events?at=2024-01-01", "at", "must be a date and time, YYYY-MM-DD hh:mm:ss"),
            ("/need", "q", "is required"),
            ("/numbers?limit=%EF%BC%91%EF%BC%92", "limit", "must be an integer"),
            ("/numbers?limit=" + "9" * 5000, "limit", "must be an integer of at most 400 digits"),
            ("/users/1/events?ratio=%D9%A0.5", "ratio", "must be a number"),
            ("/users/1/events?since=%EF%BC%92024-01-01", "since", "must be a date, YYYY-MM-DD"),
            ("/users/1/events?ratio=" + "1" * 30000 + "x", "ratio", "must be a number"),
            ("/users/1/events?ratio=0." + "5" * 2000, "ratio", "must be a number"),
        ]:
            with self.subTest(target=target):
                reply = get(self.app, target)
                self.assertEqual(reply.status, 422, reply.text())
                body = reply.json()
                self.assertEqual(body["kind"], "invalid_parameter")
                self.assertEqual(body["parameter"], parameter)
                self.assertEqual(body["rule"], rule)
                self.assertEqual(body["error"], f"{parameter} {rule}")

    def test_a_repeated_key_gives_its_first_value_as_in_the_other_sdks(self):
        self.assertEqual(get(self.app, "/numbers?limit=5&limit=7").json()["limit"], 5)
        self.assertEqual(get(self.app, "/numbers?limit=abc&limit=7").status, 422)

    def test_numbers_are_read_as_the_unambiguous_pattern_reads_them(self):
        # Differential: the pattern the router uses against the earlier one
        # (same language, quadratic on a failing run of digits), over every
        # short text of a number's characters.
        import itertools
        import re

        from wasmhouse import router

        earlier = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")
        alphabet = "01.+-ex"
        for length in range(0, 7):
            for letters in itertools.product(alphabet, repeat=length):
                text = "".join(letters)
                with self.subTest(text=text):
                    self.assertEqual(bool(router._DECIMAL.match(text)), bool(earlier.match(text)))

    def test_typed_values(self):
        body = get(self.app, "/users/42/events?since=2024-02-29&kind=view&verbose=TRUE&at=2024-01-02T03:04:05&ratio=.25").json()
        self.assertEqual(
            body,
            {"user": 42, "since": "2024-02-29", "kind": "view", "verbose": True, "at": "2024-01-02T03:04:05", "ratio": 0.25},
        )

    def test_path_segments_are_percent_decoded(self):
        self.assertEqual(get(self.app, "/hello/J%C3%BCrg").json(), {"greeting": "Hello, Jürg!"})
        self.assertEqual(get(self.app, "/hello/%FF").status, 404)

    def test_404_and_405(self):
        missing = get(self.app, "/nope")
        self.assertEqual((missing.status, missing.json()["kind"]), (404, "not_found"))
        post = get(self.app, "/numbers", "POST")
        self.assertEqual((post.status, post.json()["kind"]), (405, "method_not_allowed"))
        self.assertEqual(post.headers, [("allow", "GET, HEAD")])
        self.assertEqual(get(self.app, "/numbers", "HEAD").status, 200)

    def test_bodies_requests_and_exceptions(self):
        stored = get(self.app, "/events", "POST", b'{"user": "ann"}')
        self.assertEqual((stored.status, stored.json()), (201, {"stored": "ann", "method": "POST"}))
        self.assertEqual(get(self.app, "/events", "POST", b"{").json()["kind"], "invalid_body")
        self.assertEqual(get(self.app, "/events", "POST", b"[1]").status, 422)
        refused = get(self.app, "/events", "POST", b"{}")
        self.assertEqual((refused.status, refused.json()), (400, {"error": "an event names its user", "kind": "bad_request"}))
        for body, why in [
            (b"[" * 100000, "nests too deeply"),
            (b'{"a":' * 100000, "nests too deeply"),
            ('{"user": "ann"}'.encode("utf-16"), "utf-8"),
            ('{"user": "ann"}'.encode("utf-32"), "utf-8"),
            (b"\xef\xbb\xbf" + b'{"user": "ann"}', "BOM"),
        ]:
            with self.subTest(body=body[:12]):
                reply = get(self.app, "/events", "POST", body)
                self.assertEqual((reply.status, reply.json()["kind"]), (422, "invalid_body"), reply.text())
                self.assertIn(why, reply.json()["error"])
        broken = get(self.app, "/broken")
        self.assertEqual((broken.status, broken.json()["kind"]), (503, "clickhouse_unavailable"))

    def test_openapi_from_signatures(self):
        doc = get(self.app, "/.well-known/openapi.json").json()
        self.assertEqual(doc["info"], {"title": "t", "version": "2.0.0"})
        numbers = doc["paths"]["/numbers"]["get"]
        self.assertEqual(numbers["summary"], "Numbers, a page at a time.")
        self.assertEqual(numbers["description"], "Longer words.")
        self.assertEqual(numbers["operationId"], "numbers")
        limit = numbers["parameters"][0]
        self.assertEqual(
            limit,
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "format": "int64", "minimum": 1, "maximum": 1000, "default": 10},
                "description": "How many",
            },
        )
        self.assertIn("422", numbers["responses"])
        self.assertIn("503", numbers["responses"])
        events = {p["name"]: p for p in doc["paths"]["/users/{user_id}/events"]["get"]["parameters"]}
        self.assertEqual(events["user_id"]["in"], "path")
        self.assertTrue(events["user_id"]["required"])
        self.assertEqual(events["kind"]["schema"]["enum"], ["click", "view"])
        self.assertEqual(events["since"]["schema"]["format"], "date")
        self.assertEqual(events["ratio"]["schema"]["exclusiveMaximum"], True)
        self.assertTrue(doc["paths"]["/need"]["get"]["parameters"][0]["required"])
        self.assertEqual(doc["paths"]["/events"]["post"]["requestBody"]["content"]["application/json"]["schema"], {"type": "object"})

    def test_declaration_mistakes_are_caught_at_import(self):
        app = App()
        with self.assertRaisesRegex(TypeError, "takes no parameter id"):
            app.get("/items/{id}")(lambda: None)
        with self.assertRaisesRegex(TypeError, "cannot be list"):

            @app.get("/x")
            def listed(values: list = None):
                return values

        with self.assertRaisesRegex(TypeError, "async def handlers need a WASI 0.3 component"):

            @app.get("/async")
            async def later():
                return 1

        with self.assertRaisesRegex(TypeError, "Query\\(\\) but is in the path"):

            @app.get("/y/{z}")
            def misplaced(z: int = Query(1)):
                return z


class Headers(unittest.TestCase):
    def test_a_header_http_does_not_allow_is_refused_before_it_is_sent(self):
        from wasmhouse.http import header_list

        self.assertEqual(
            header_list(JSONResponse({}, headers=[("x-a", "b")])),
            [("content-type", b"application/json"), ("x-a", b"b")],
        )
        for headers in [
            [("x-echo", "a\r\nset-cookie: x=1")],
            [("x-echo", "a\nb")],
            [("x-echo", "a\0b")],
            [("x echo", "a")],
            [("", "a")],
            [("x-\u00e9", "a")],
        ]:
            with self.subTest(headers=headers):
                with self.assertRaises(ValueError):
                    header_list(JSONResponse({}, headers=headers))


class Values(unittest.TestCase):
    def test_sql_value(self):
        self.assertEqual(sql_value(True), "true")
        self.assertEqual(sql_value(None), "\\N")
        self.assertEqual(sql_value(3.5), "3.5")
        self.assertEqual(sql_value(datetime.date(2024, 1, 31)), "2024-01-31")
        self.assertEqual(sql_value(datetime.datetime(2024, 1, 31, 1, 2, 3)), "2024-01-31 01:02:03")
        self.assertEqual(sql_value(["a", "it's", 1]), "['a','it\\'s',1]")
        self.assertEqual(sql_value([[1, 2], None]), "[[1,2],NULL]")


if __name__ == "__main__":
    unittest.main()
