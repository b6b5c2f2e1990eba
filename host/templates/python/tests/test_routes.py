"""The routes' declarations, checked under plain Python (`python3 -m
unittest`): what each request would reach and the 404, 405 and 422 the
router answers. The queries themselves run under `wasmhouse dev`."""

import os
import sys
import unittest

ROOT = os.path.join(os.path.dirname(__file__), "..")
sys.path[:0] = [os.path.join(ROOT, "src"), os.path.join(ROOT, "lib")]

from app import app  # noqa: E402
from wasmhouse import Request  # noqa: E402


def get(target, method="GET"):
    path, _, query = target.partition("?")
    return app.handle(Request(method, path, query))


class Routes(unittest.TestCase):
    def test_parameters_are_checked_against_their_rules(self):
        too_many = get("/numbers?limit=5000")
        self.assertEqual(too_many.status, 422)
        self.assertEqual(too_many.json()["parameter"], "limit")
        self.assertEqual(too_many.json()["rule"], "must be at most 1000")
        self.assertEqual(get("/numbers?offset=-1").status, 422)

    def test_unknown_paths_and_methods_are_refused(self):
        self.assertEqual(get("/nope").status, 404)
        post = get("/numbers", "POST")
        self.assertEqual(post.status, 405)
        self.assertEqual(post.headers, [("allow", "GET, HEAD")])

    def test_the_openapi_document_lists_the_routes(self):
        doc = app.openapi()
        limit = doc["paths"]["/numbers"]["get"]["parameters"][0]
        self.assertEqual(limit["name"], "limit")
        self.assertEqual(limit["schema"]["maximum"], 1000)
        self.assertEqual(doc["paths"]["/hello/{name}"]["get"]["parameters"][0]["in"], "path")


if __name__ == "__main__":
    unittest.main()
