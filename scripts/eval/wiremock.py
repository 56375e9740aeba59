"""A small, independent model of WireMock stub matching, used by the evaluation to learn
which mapping answers which recorded request (so that a mutation is only expected to be
found where the mutated mapping is actually served during replay).

It reads generic WireMock mapping JSON: a file holds one mapping or {"mappings": [...]}.
Request matching covers method, url / urlPattern / urlPath / urlPathPattern /
urlPathTemplate, queryParameters, headers and bodyPatterns with the usual value matchers;
priorities (lowest number wins, default 5; the most recently loaded wins among equals,
files loaded in sorted order) and scenarios (requiredScenarioState / newScenarioState).
Anything it does not understand is treated as matching and noted as "uncertain".
"""

import json
import os
import re
import urllib.parse

REDACTED = re.compile(r"<redacted(:[a-z]+)?>|redacted", re.IGNORECASE)


class Mapping:
    def __init__(self, file, index, data, order):
        self.file = file  # path relative to the service directory, e.g. mappings/x.json
        self.index = index  # position inside a {"mappings": [...]} file, or None
        self.data = data
        self.order = order  # load order
        self.uncertain = []

    @property
    def key(self):
        return self.file if self.index is None else f"{self.file}#{self.index}"

    @property
    def priority(self):
        value = self.data.get("priority", 5)
        try:
            return int(value)
        except (TypeError, ValueError):
            return 5

    @property
    def request(self):
        return self.data.get("request") or {}

    @property
    def response(self):
        return self.data.get("response") or {}


def load_mappings(service_dir):
    """Every mapping under SERVICE/mappings/*.json, in load order."""
    mappings_dir = os.path.join(service_dir, "mappings")
    result = []
    if not os.path.isdir(mappings_dir):
        return result
    for name in sorted(os.listdir(mappings_dir)):
        if not name.endswith(".json"):
            continue
        rel = os.path.join("mappings", name)
        with open(os.path.join(service_dir, rel), encoding="utf-8") as handle:
            document = json.load(handle)
        if isinstance(document, dict) and isinstance(document.get("mappings"), list):
            for position, item in enumerate(document["mappings"]):
                result.append(Mapping(rel, position, item, len(result)))
        else:
            result.append(Mapping(rel, None, document, len(result)))
    return result


# ---------------------------------------------------------------- value matchers


def _regex_full(pattern, text):
    try:
        return re.fullmatch(pattern, text, re.DOTALL) is not None
    except re.error:
        return False


def json_equal(expected, actual, ignore_order=False, ignore_extra=False):
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return float(expected) == float(actual)
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return False
        if not ignore_extra and set(actual) != set(expected):
            return False
        return all(k in actual and json_equal(v, actual[k], ignore_order, ignore_extra) for k, v in expected.items())
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return False
        if not ignore_extra and len(expected) != len(actual):
            return False
        if ignore_order:
            remaining = list(actual)
            for item in expected:
                hit = next((i for i, a in enumerate(remaining) if json_equal(item, a, ignore_order, ignore_extra)), None)
                if hit is None:
                    return False
                remaining.pop(hit)
            return True
        if len(expected) > len(actual):
            return False
        return all(json_equal(e, a, ignore_order, ignore_extra) for e, a in zip(expected, actual))
    if isinstance(expected, str) and isinstance(actual, str) and REDACTED.search(actual):
        return True
    return expected == actual


def value_matches(spec, value, notes):
    """`value` is a string or None (absent). Returns whether the matcher spec accepts it."""
    if not isinstance(spec, dict):
        notes.append(f"matcher {spec!r} is not an object")
        return True
    if "absent" in spec:
        return (value is None) == bool(spec.get("absent"))
    if value is None:
        # and/or with an absent value, or a negative matcher, can still pass
        if "or" in spec:
            return any(value_matches(s, value, notes) for s in spec["or"])
        if "and" in spec:
            return all(value_matches(s, value, notes) for s in spec["and"])
        return False
    if REDACTED.search(value):
        return True  # a matcher that fails only on a redacted value counts as matched
    if "equalTo" in spec:
        expected = spec["equalTo"]
        expected = expected if isinstance(expected, str) else json.dumps(expected)
        if spec.get("caseInsensitive"):
            return expected.lower() == value.lower()
        return expected == value
    if "contains" in spec:
        return str(spec["contains"]) in value
    if "doesNotContain" in spec:
        return str(spec["doesNotContain"]) not in value
    if "matches" in spec:
        return _regex_full(str(spec["matches"]), value)
    if "doesNotMatch" in spec:
        return not _regex_full(str(spec["doesNotMatch"]), value)
    if "equalToJson" in spec:
        expected = spec["equalToJson"]
        if isinstance(expected, str):
            try:
                expected = json.loads(expected)
            except ValueError:
                return False
        try:
            actual = json.loads(value)
        except ValueError:
            return False
        return json_equal(expected, actual, bool(spec.get("ignoreArrayOrder")), bool(spec.get("ignoreExtraElements")))
    if "or" in spec:
        return any(value_matches(s, value, notes) for s in spec["or"])
    if "and" in spec:
        return all(value_matches(s, value, notes) for s in spec["and"])
    notes.append(f"matcher {sorted(spec)} not modelled; treated as matching")
    return True


def multi_value_matches(spec, values, notes):
    """A query parameter or header that may repeat."""
    if isinstance(spec, dict) and ("hasExactly" in spec or "includes" in spec):
        wanted = spec.get("hasExactly") or spec.get("includes") or []
        hits = all(any(value_matches(w, v, notes) for v in values) for w in wanted)
        if "hasExactly" in spec:
            return hits and len(values) == len(wanted)
        return hits
    if not values:
        return value_matches(spec, None, notes)
    return any(value_matches(spec, v, notes) for v in values)


# ---------------------------------------------------------------- request matching


class Request:
    """A recorded request as replay sends it."""

    def __init__(self, method, target, headers, body):
        self.method = method.upper()
        self.target = target
        parts = urllib.parse.urlsplit(target)
        self.path = parts.path or "/"
        self.query = parts.query
        self.query_params = {}
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
            self.query_params.setdefault(name, []).append(value)
        self.headers = {}
        for name, value in headers:
            self.headers.setdefault(name.lower(), []).append(value)
        self.body = body or ""


def template_regex(template, empty_names=False):
    """A path template (`/users/{id}`) as a compiled regex: each `{name}` stands for one or more
    non-`/` characters, the rest is literal. `{}` is a parameter too with `empty_names`
    (driftcheck's endpoint templates), literal otherwise (WireMock's urlPathTemplate)."""
    out = []
    for piece in re.split(r"(\{[^}/]*\})" if empty_names else r"(\{[^}/]+\})", template):
        if piece.startswith("{") and piece.endswith("}"):
            out.append(r"[^/]+")
        else:
            out.append(re.escape(piece))
    return re.compile("".join(out))


def url_matches(req_spec, request):
    if "url" in req_spec:
        return req_spec["url"] == request.target
    if "urlPattern" in req_spec:
        return _regex_full(req_spec["urlPattern"], request.target)
    if "urlPath" in req_spec:
        return req_spec["urlPath"] == request.path
    if "urlPathPattern" in req_spec:
        return _regex_full(req_spec["urlPathPattern"], request.path)
    if "urlPathTemplate" in req_spec:
        return template_regex(req_spec["urlPathTemplate"]).fullmatch(request.path) is not None
    return True


def request_matches(mapping, request):
    spec = mapping.request
    notes = mapping.uncertain
    method = str(spec.get("method", "ANY")).upper()
    if method != "ANY" and method != request.method:
        return False
    if not url_matches(spec, request):
        return False
    for name, matcher in (spec.get("queryParameters") or {}).items():
        if not multi_value_matches(matcher, request.query_params.get(name, []), notes):
            return False
    for name, matcher in (spec.get("headers") or {}).items():
        if not multi_value_matches(matcher, request.headers.get(name.lower(), []), notes):
            return False
    for pattern in spec.get("bodyPatterns") or []:
        if not value_matches(pattern, request.body, notes):
            return False
    for extra in ("cookies", "basicAuthCredentials", "customMatcher", "formParameters", "multipartPatterns"):
        if extra in spec and f"request.{extra} not modelled" not in notes:
            notes.append(f"request.{extra} not modelled")
    return True


def simulate(mappings, requests):
    """Replays `requests` (in order) against `mappings` like WireMock would.

    Returns a list, one per request: (chosen Mapping or None, ambiguous: bool, candidates).
    `ambiguous` marks a tie on priority that only load order decided.
    """
    states = {}
    results = []
    for request in requests:
        candidates = []
        for mapping in mappings:
            scenario = mapping.data.get("scenarioName")
            required = mapping.data.get("requiredScenarioState")
            if scenario is not None and required is not None and states.get(scenario, "Started") != required:
                continue
            if request_matches(mapping, request):
                candidates.append(mapping)
        if not candidates:
            results.append((None, False, []))
            continue
        best_priority = min(m.priority for m in candidates)
        top = [m for m in candidates if m.priority == best_priority]
        chosen = max(top, key=lambda m: m.order)
        scenario = chosen.data.get("scenarioName")
        if scenario is not None and chosen.data.get("newScenarioState") is not None:
            states[scenario] = chosen.data["newScenarioState"]
        results.append((chosen, len(top) > 1, candidates))
    return results
