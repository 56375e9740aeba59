"""Reality statistics from the recordings and a seeded mutation generator for WireMock
mappings. Each mutation changes a fresh copy of one service's exported mocks in one way and
says which finding (service, kind, path, endpoint of the mutated request) a correct
driftcheck must report for it.
"""

import copy
import json
import os
import random
import re
import shutil

import wiremock

KINDS = [
    "type",
    "missing-field",
    "phantom-field",
    "enum",
    "status",
    "status-code",
    "content-type",
    "format",
    "nullability",
    "unmocked",
    "header",
]

MUTANT_FIELD = "zz_mutant"
MUTANT_VALUE = "MUTANT_VALUE"

DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://|/)\S*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")
REDACTED = re.compile(r"<redacted(:[a-z]+)?>")


def formatted(text):
    """Whether a string carries a recognisable format (and so is no enum member)."""
    return any(p.match(text) for p in (DATE_TIME, DATE, UUID, URL, EMAIL, NUMBER))


def member_path(path, name):
    """driftcheck's JSONPath dialect: `.name` for plain names, `['odd name']` otherwise."""
    if re.fullmatch(r"[A-Za-z0-9_]+", name):
        return f"{path}.{name}"
    return path + "['" + name.replace("'", "\\'") + "']"


def type_class(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def id_keyed(obj):
    """An object keyed by data (ids) rather than by field names: not mutated inside."""
    if not obj:
        return False
    for key in obj:
        if not (key.isdigit() or UUID.match(key) or (len(key) >= 8 and re.fullmatch(r"[0-9a-fA-F]+", key))):
            return False
    return True


def walk(value, path="$", pointer=()):
    """Yields (jsonpath, pointer, value) for every node; id-keyed objects are opaque."""
    yield path, pointer, value
    if isinstance(value, dict):
        if id_keyed(value):
            return
        for key, child in value.items():
            yield from walk(child, member_path(path, key), pointer + (key,))
    elif isinstance(value, list):
        for position, child in enumerate(value):
            yield from walk(child, path + "[*]", pointer + (position,))


# ---------------------------------------------------------------- reality


class PathStats:
    __slots__ = ("count", "classes", "strings", "objects", "members", "redacted", "requests", "value_paths",
                 "repeated")

    def __init__(self):
        self.count = 0
        self.classes = {}
        self.strings = {}
        self.objects = 0
        self.members = {}
        self.redacted = False
        self.requests = set()  # distinct (method, target, body) that sent this path
        self.value_paths = {}  # string value → request paths it was seen under
        self.repeated = set()  # string values seen twice within one response

    def add(self, value, request_key=None, request_path=None, in_body=None):
        self.count += 1
        if request_key is not None:
            self.requests.add(request_key)
        kind = type_class(value)
        self.classes[kind] = self.classes.get(kind, 0) + 1
        if isinstance(value, str):
            self.strings[value] = self.strings.get(value, 0) + 1
            if REDACTED.search(value):
                self.redacted = True
            if request_path is not None:
                self.value_paths.setdefault(value, set()).add(request_path)
            if in_body is not None:
                if value in in_body:
                    self.repeated.add(value)
                in_body.add(value)
        if isinstance(value, dict) and not id_keyed(value):
            self.objects += 1
            for key in value:
                self.members[key] = self.members.get(key, 0) + 1


class EndpointStats:
    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.exchanges = 0
        self.json_bodies = 0
        self.paths = {}

    def add_body(self, body, request_key, request_path):
        self.json_bodies += 1
        seen = {}
        for path, _pointer, value in walk(body):
            stats = self.paths.get(path)
            if stats is None:
                stats = self.paths[path] = PathStats()
            stats.add(value, request_key, request_path, seen.setdefault(path, set()))


def endpoint_matches(endpoint, method, path):
    """`METHOD /template` (where {name} is one or more non-/ characters) against a request."""
    parts = endpoint.split(" ", 1)
    if len(parts) != 2 or parts[0].upper() != method.upper():
        return False
    template = parts[1].split("?", 1)[0]
    return wiremock.template_regex(template, empty_names=True).fullmatch(path) is not None


class Endpoints:
    """The templated endpoints `driftcheck list --json` reports, matched against paths."""

    def __init__(self, templates):
        self.templates = []
        for endpoint in templates:
            method, _, template = endpoint.partition(" ")
            literal = len(re.sub(r"\{[^}/]*\}", "", template))
            pattern = wiremock.template_regex(template.split("?", 1)[0], empty_names=True)
            self.templates.append((endpoint, method.upper(), pattern, literal))

    def of(self, method, path):
        hits = [t for t in self.templates if t[1] == method.upper() and t[2].fullmatch(path)]
        if not hits:
            return f"{method.upper()} {path}"
        return max(hits, key=lambda t: t[3])[0]


def is_json_media(content_type):
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


# ---------------------------------------------------------------- evidence before claims

# driftcheck's defaults (`evidence: { min-samples: 3, min-requests: 2, enum-samples: 8 }`)
MIN_SAMPLES = 3
MIN_SOURCES = 2
ENUM_SAMPLES = 8
# claims about the real service in general, made only with enough samples at the path. The
# nullability mutation ("always null") is the other direction — the mock only ever sends null
# where the real service sent values to the same requests — which needs no statistics.
STATISTICAL = ("value", "enum", "format")
_VALUE_CAP = 64  # distinct scalar values driftcheck keeps per path before it stops counting


def query_variant(target):
    """driftcheck's query variant of a request: `?` and the sorted set of query parameter names."""
    query = target.split("?", 1)[1] if "?" in target else ""
    if not query:
        return "?"
    names = set()
    for part in query.split("&"):
        if part:
            pieces = [p for p in part.split("=", 1) if p]
            names.add(pieces[0] if pieces else "")
    return "?" + "&".join(sorted(names))


class PathEvidence:
    """The real samples driftcheck pools at one JSON path of one endpoint, status and variant."""
    __slots__ = ("count", "classes", "strings", "string_count", "values", "requests")

    def __init__(self):
        self.count = 0
        self.classes = {}
        self.strings = {}
        self.string_count = 0
        self.values = {}  # serialized scalar → samples; None once there were too many to keep
        self.requests = set()  # distinct (method, target, body) behind the samples

    def add(self, value, request_key):
        self.count += 1
        kind = type_class(value)
        self.classes[kind] = self.classes.get(kind, 0) + 1
        self.requests.add(request_key)
        if kind in ("array", "object", "null"):
            return
        if kind == "string":
            self.string_count += 1
            self.strings[value] = self.strings.get(value, 0) + 1
        if self.values is not None:
            key = json.dumps(value)
            self.values[key] = self.values.get(key, 0) + 1
            if len(self.values) > _VALUE_CAP:
                self.values = None

    def sources(self, path):
        """Independent sources: distinct requests; inside an array every element is one."""
        return max(len(self.requests), self.count) if "[*]" in path else len(self.requests)

    def stable(self):
        """The one value every sample had (serialized), if any."""
        if self.values is not None and len(self.values) == 1:
            (only, n), = self.values.items()
            if n == self.count:
                return only
        return None


def evidence_for(kind, node, path):
    """Whether `node` (a PathEvidence or None) backs a statistical claim of `kind` at `path`,
    with the facts: {"met", "samples", "sources"} (+ "distinct" for an enum)."""
    if node is None:
        return {"met": False, "samples": 0, "sources": 0}
    sources = node.sources(path)
    if kind in ("enum", "format"):
        samples = node.string_count
    else:
        samples = node.count
    facts = {"samples": samples, "sources": sources}
    met = samples >= MIN_SAMPLES and sources >= MIN_SOURCES
    if kind == "enum":
        distinct = len(node.strings)
        facts["distinct"] = distinct
        met = met and samples >= ENUM_SAMPLES and 1 <= distinct <= 6 and distinct * 2 <= samples
    elif kind == "value":
        met = met and node.stable() is not None
    facts["met"] = met
    return facts


class Reality:
    """Recorded exchanges (from the HAR export) grouped into endpoints, with statistics."""

    def __init__(self, exchanges, endpoints):
        self.exchanges = exchanges
        self.by_endpoint = {}
        self.pools = {}  # (endpoint, status, variant or "") → {jsonpath: PathEvidence}
        for exchange in exchanges:
            exchange["endpoint"] = endpoints.of(exchange["method"], exchange["path"])
            stats = self.by_endpoint.get(exchange["endpoint"])
            if stats is None:
                stats = self.by_endpoint[exchange["endpoint"]] = EndpointStats(exchange["endpoint"])
            stats.exchanges += 1
            exchange["variant"] = query_variant(exchange["target"])
            if exchange.get("json") is not None:
                request_key = (exchange["method"], exchange["target"], exchange["request_body"])
                stats.add_body(exchange["json"]["value"], request_key, exchange["path"])
                # driftcheck's pools: per endpoint, status and query variant, and the union ("")
                for variant in ("", exchange["variant"]):
                    pool = self.pools.setdefault((exchange["endpoint"], exchange["status"], variant), {})
                    for path, _pointer, value in walk(exchange["json"]["value"]):
                        node = pool.get(path)
                        if node is None:
                            node = pool[path] = PathEvidence()
                        node.add(value, request_key)

    def pool_of(self, position):
        """The samples driftcheck judges a replayed exchange against: its endpoint, status and
        query variant, or the union over variants when that variant has no JSON samples."""
        exchange = self.exchanges[position]
        key = (exchange["endpoint"], exchange["status"])
        return self.pools.get(key + (exchange["variant"],)) or self.pools.get(key + ("",)) or {}

    def evidence(self, kind, positions, path):
        """The evidence behind a claim of `kind` at `path` for the exchanges at `positions`: met
        when any of them is judged against a pool that backs it; the facts of the best pool."""
        best = None
        for position in positions:
            exchange = self.exchanges[position]
            pools = [(exchange["variant"], self.pool_of(position))]
            if kind == "enum":
                # A closed set of values belongs to the field: driftcheck also asks the union
                # over query variants.
                pools.append(("", self.pools.get((exchange["endpoint"], exchange["status"], ""), {})))
            for variant, pool in pools:
                facts = evidence_for(kind, pool.get(path), path)
                facts["variant"] = variant or "(all variants)"
                facts["status"] = exchange["status"]
                rank = (facts["met"], facts["samples"], facts["sources"])
                if best is None or rank > best[0]:
                    best = (rank, facts)
        return best[1] if best else {"met": False, "samples": 0, "sources": 0}

    def path_stats(self, endpoints, path):
        """Merged statistics of `path` over several endpoints (None when no endpoint has it)."""
        found = [self.by_endpoint[e].paths[path] for e in endpoints if path in self.by_endpoint[e].paths]
        if not found:
            return None
        if len(found) == 1:
            return found[0]
        merged = PathStats()
        for stats in found:
            merged.count += stats.count
            merged.objects += stats.objects
            merged.redacted = merged.redacted or stats.redacted
            merged.requests |= stats.requests
            merged.repeated |= stats.repeated
            for key, paths in stats.value_paths.items():
                merged.value_paths.setdefault(key, set()).update(paths)
            for key, n in stats.classes.items():
                merged.classes[key] = merged.classes.get(key, 0) + n
            for key, n in stats.strings.items():
                merged.strings[key] = merged.strings.get(key, 0) + n
            for key, n in stats.members.items():
                merged.members[key] = merged.members.get(key, 0) + n
        return merged


# ---------------------------------------------------------------- mapping bodies


def mapping_body(mapping, service_dir):
    """(source, parsed JSON) of a mapping's response body, or (None, None) when it has no JSON body."""
    response = mapping.response
    if "jsonBody" in response:
        return "jsonBody", response["jsonBody"]
    text = None
    source = None
    if isinstance(response.get("body"), str):
        text, source = response["body"], "body"
    elif isinstance(response.get("bodyFileName"), str):
        path = os.path.join(service_dir, "__files", response["bodyFileName"])
        try:
            with open(path, encoding="utf-8") as handle:
                text, source = handle.read(), "bodyFileName"
        except (OSError, UnicodeDecodeError):
            return None, None
    if text is None or "{{" in text and response.get("transformers"):
        return None, None
    try:
        return source, json.loads(text)
    except ValueError:
        return None, None


def header_value(response, name):
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name:
            return key, value
    return None, None


# ---------------------------------------------------------------- the plan


def _status_of(mapping):
    try:
        return int(mapping.response.get("status", 200))
    except (TypeError, ValueError):
        return 200


def _at(value, pointer):
    """The value at `pointer` in `value`, or a sentinel when it does not resolve."""
    for step in pointer:
        if isinstance(value, dict) and isinstance(step, str) and step in value:
            value = value[step]
        elif isinstance(value, list) and isinstance(step, int) and step < len(value):
            value = value[step]
        else:
            return _MISSING
    return value


_MISSING = object()


class Plan:
    """Everything the generator knows about one service: the mappings, the recorded requests
    and which mapping answers which request during replay (by simulation)."""

    def __init__(self, service, service_dir, reality, endpoints):
        self.service = service
        self.service_dir = service_dir
        self.reality = reality
        self.mappings = wiremock.load_mappings(service_dir)
        self.requests = [
            wiremock.Request(x["method"], x["target"], x["request_headers"], x["request_body"])
            for x in reality.exchanges
        ]
        self.results = wiremock.simulate(self.mappings, self.requests)
        self.served = {m.key: [] for m in self.mappings}  # mapping → exchange positions it alone answers
        self.faithful = {m.key: [] for m in self.mappings}  # … where its status is the real one
        self.ambiguous = {m.key: 0 for m in self.mappings}
        self.unmatched = []
        for position, (chosen, ambiguous, candidates) in enumerate(self.results):
            if chosen is None:
                self.unmatched.append(position)
            elif ambiguous:
                for m in candidates:
                    self.ambiguous[m.key] += 1
            else:
                self.served[chosen.key].append(position)
                if _status_of(chosen) == reality.exchanges[position]["status"]:
                    self.faithful[chosen.key].append(position)
        self.bodies = {m.key: mapping_body(m, service_dir) for m in self.mappings}
        # identical requests (as replay sends them), for telling volatile values apart
        self.twins = {}
        for position, exchange in enumerate(reality.exchanges):
            self.twins.setdefault(self._request_key(exchange), []).append(position)

    @staticmethod
    def _request_key(exchange):
        return (exchange["method"], exchange["target"], exchange["request_body"])

    def faithful_positions(self, mapping_keys):
        return sorted({p for key in mapping_keys for p in self.faithful[key]})

    def endpoints_of(self, positions):
        return sorted({self.reality.exchanges[p]["endpoint"] for p in positions})

    def requests_of(self, positions):
        seen = []
        for p in positions:
            item = [self.reality.exchanges[p]["method"], self.reality.exchanges[p]["path"]]
            if item not in seen:
                seen.append(item)
        return seen

    def twin_positions(self, positions):
        out = set()
        for p in positions:
            out.update(self.twins[self._request_key(self.reality.exchanges[p])])
        return sorted(out)

    def volatile_body(self, positions, pointer):
        """Whether identical real requests got different values at `pointer`."""
        values = set()
        for p in self.twin_positions(positions):
            body = self.reality.exchanges[p].get("json")
            if body is None:
                continue
            value = _at(body["value"], pointer)
            if value is not _MISSING:
                values.add(json.dumps(value, sort_keys=True))
        return len(values) > 1

    def volatile_header(self, positions, name):
        values = set()
        for p in self.twin_positions(positions):
            for key, value in self.reality.exchanges[p]["response_headers"]:
                if key.lower() == name:
                    values.add(value)
        return len(values) > 1

    def summary(self):
        return {
            "mappings": len(self.mappings),
            "mappings_served": sum(1 for m in self.mappings if self.served[m.key]),
            "mappings_served_with_real_status": sum(1 for m in self.mappings if self.faithful[m.key]),
            "exchanges": len(self.requests),
            "exchanges_unmatched_by_simulation": len(self.unmatched),
            "exchanges_ambiguous_by_simulation": sum(1 for r in self.results if r[0] is not None and r[1]),
            "uncertain_matchers": sorted({n for m in self.mappings for n in m.uncertain}),
        }


def _mutation(plan, kind, mapping_keys, path, requests, description, ops, **extra):
    mutation = {
        "kind": kind,
        "service": plan.service,
        "files": sorted({k.split("#")[0] for k in mapping_keys}),
        "description": description,
        "ops": ops,
        "expected": {"service": plan.service, "kind": kind, "path": path, "requests": requests},
        "implied": [],
        "volatile": False,
        "evidence": None,  # real samples at the path over the whole endpoint (every status and variant)
        # statistical kinds: what driftcheck's pool holds at the path (evidence_for) and whether
        # that is below its thresholds (then the mutation is run but not counted in recall)
        "claim_evidence": None,
        "below_evidence": False,
    }
    mutation.update(extra)
    if kind in STATISTICAL and mutation["claim_evidence"] is None:
        mutation["claim_evidence"] = plan.reality.evidence(kind, plan.faithful_positions(mapping_keys), path)
    if mutation["claim_evidence"] is not None:
        mutation["below_evidence"] = not mutation["claim_evidence"]["met"]
    return mutation


def candidates(plan):
    """Every qualifying mutation of every kind, deterministic order: {kind: [(group, mutation)]}.

    A mapping qualifies when the simulation says it alone answers some recorded request, and
    (except for deletion) answers it with the real status: where the mock already answers
    with another status, a body or header change is not what a comparison would look at.
    """
    pool = {kind: [] for kind in KINDS}
    reality = plan.reality
    for mapping in plan.mappings:
        key = mapping.key
        if not plan.served[key] or plan.ambiguous[key]:
            continue  # never (or not certainly) the answer during replay: a change there is invisible
        response = mapping.response
        status = _status_of(mapping)

        # unmocked: without this mapping, some request it answered must find no answer at all
        if mapping.data.get("scenarioName") is not None and mapping.data.get("newScenarioState") is not None:
            # its removal changes scenario states: replay the whole service without it
            others = [m for m in plan.mappings if m.key != key]
            after = wiremock.simulate(others, plan.requests)
            gone = {p for p in plan.served[key] if after[p][0] is None}
            before_served = {r[0].key for r in plan.results if r[0] is not None}
            after_served = {r[0].key for r in after if r[0] is not None}
            stranded = [m for m in others if m.key in before_served and m.key not in after_served]
        else:
            gone = {p for p in plan.served[key] if [m.key for m in plan.results[p][2]] == [key]}
            stranded = []
        orphaned = plan.requests_of([p for p in plan.served[key] if p in gone])
        if orphaned:
            implied = [{"kind": "unverified", "path": "$", "requests": plan.requests_of(plan.served[m.key])}
                       for m in stranded if plan.served[m.key]]
            pool["unmocked"].append(
                (plan.endpoints_of(plan.served[key])[0],
                 _mutation(plan, "unmocked", [key], "$", orphaned, f"{key}: mapping deleted",
                           [{"mapping": key, "op": "delete-mapping"}], implied=implied)))

        positions = plan.faithful[key]
        if not positions:
            continue
        endpoints = plan.endpoints_of(positions)
        requests = plan.requests_of(positions)
        group = endpoints[0]

        if 200 <= status < 300:
            pool["status"].append(
                (group, _mutation(plan, "status", [key], "status", requests, f"{key}: status {status} → 503",
                                  [{"mapping": key, "op": "status", "value": 503}])))
        if status == 200:
            pool["status-code"].append(
                (group, _mutation(plan, "status-code", [key], "status", requests, f"{key}: status 200 → 203",
                                  [{"mapping": key, "op": "status", "value": 203}])))
        name, value = header_value(response, "content-type")
        if isinstance(value, str) and value.lower().startswith("application/json"):
            pool["content-type"].append(
                (group, _mutation(plan, "content-type", [key], "header:content-type", requests,
                                  f"{key}: Content-Type {value!r} → 'text/plain'",
                                  [{"mapping": key, "op": "header", "name": name, "value": "text/plain"}])))
        name, value = header_value(response, "location")
        if isinstance(value, str) and value != "/elsewhere/1":
            pool["header"].append(
                (group, _mutation(plan, "header", [key], "header:location", requests,
                                  f"{key}: Location {value!r} → '/elsewhere/1'",
                                  [{"mapping": key, "op": "header", "name": name, "value": "/elsewhere/1"}],
                                  volatile=plan.volatile_header(positions, "location"))))

        source, body = plan.bodies[key]
        if source is None:
            continue
        first = {}  # jsonpath → first pointer
        every = {}  # jsonpath → every pointer
        for path, pointer, value in walk(body):
            first.setdefault(path, (pointer, value))
            every.setdefault(path, []).append(pointer)
        for path, (pointer, value) in first.items():
            stats = reality.path_stats(endpoints, path)
            if stats is None or stats.redacted:
                continue
            kind = type_class(value)
            real_classes = set(stats.classes)
            evidence = {"samples": stats.count, "distinct_requests": len(stats.requests)}
            volatile = plan.volatile_body(positions, pointer)

            def add(kind_name, target, description, ops, **extra):
                extra.setdefault("volatile", volatile)
                pool[kind_name].append(
                    (group, _mutation(plan, kind_name, [key], target, requests, description, ops, evidence=evidence,
                                      **extra)))

            # type
            if kind in ("number", "string", "boolean") and real_classes == {kind} and not (
                    isinstance(value, str) and REDACTED.search(value)):
                if kind == "number":
                    new = str(int(value)) if float(value).is_integer() else str(value)
                elif kind == "string":
                    new = 12345
                else:
                    new = "true" if value else "false"
                add("type", path, f"{key}: {path} {json.dumps(value)} → {json.dumps(new)}",
                    [{"mapping": key, "op": "set", "pointer": list(pointer), "value": new}])
            # enum; where the pool holds a single value, "always VALUE" (`value`) is as right
            if kind == "string" and real_classes <= {"string", "null"} and "string" in real_classes:
                n = sum(stats.strings.values())
                distinct = sorted(stats.strings)
                # a closed set needs evidence: 8+ samples, 2-6 values, each value seen twice on average,
                # no formatted values, and values shared between resources rather than echoed from the URL
                if n >= 8 and 2 <= len(distinct) <= 6 and n >= 2 * len(distinct) \
                        and not any(formatted(s) for s in distinct) and value != MUTANT_VALUE \
                        and all(len(stats.value_paths.get(v, ())) >= 2 or v in stats.repeated for v in distinct):
                    implied = []
                    if reality.evidence("value", positions, path)["met"]:
                        implied.append({"kind": "value", "path": path, "requests": requests})
                    add("enum", path, f"{key}: {path} {json.dumps(value)} → {MUTANT_VALUE!r} (real values: {distinct})",
                        [{"mapping": key, "op": "set", "pointer": list(pointer), "value": MUTANT_VALUE}],
                        implied=implied)
            # format
            if kind == "string" and DATE_TIME.match(value) and real_classes <= {"string", "null"} and all(
                    DATE_TIME.match(s) for s in stats.strings):
                add("format", path, f"{key}: {path} {value!r} → {value[:10]!r}",
                    [{"mapping": key, "op": "set", "pointer": list(pointer), "value": value[:10]}])
            # phantom-field
            if kind == "object" and stats.objects > 0 and MUTANT_FIELD not in stats.members and not id_keyed(value):
                target = member_path(path, MUTANT_FIELD)
                add("phantom-field", target, f"{key}: add {target} = 'mutant'",
                    [{"mapping": key, "op": "add", "pointer": list(pointer), "name": MUTANT_FIELD, "value": "mutant"}],
                    volatile=False)
            # missing-field: a member every real object at the parent path has, removed everywhere here
            if kind == "object" and stats.objects > 0 and not id_keyed(value):
                for member in value:
                    if stats.members.get(member, 0) != stats.objects:
                        continue
                    child = member_path(path, member)
                    pointers = [list(p) + [member] for p in every[path]
                                if isinstance(_navigate(body, p), dict) and member in _navigate(body, p)]
                    add("missing-field", child, f"{key}: delete {child} ({len(pointers)}×)",
                        [{"mapping": key, "op": "delete", "pointers": pointers}], volatile=False)

    # nullability: per endpoint, a scalar never null in reality, set to null in every mapping answering it
    owners = {}
    for mapping in plan.mappings:
        for endpoint in plan.endpoints_of(plan.served[mapping.key]):
            owners.setdefault(endpoint, []).append(mapping)
    ambiguous_endpoints = {
        reality.exchanges[p]["endpoint"] for p, r in enumerate(plan.results) if r[0] is not None and r[1]
    }
    for endpoint in sorted(owners):
        mappings = owners[endpoint]
        if endpoint in ambiguous_endpoints:
            continue
        if any(plan.endpoints_of(plan.served[m.key]) != [endpoint] for m in mappings):
            continue  # a mapping shared with another endpoint would change that one too
        stats_by_path = reality.by_endpoint[endpoint].paths
        occurrences = {}
        for mapping in mappings:
            source, body = plan.bodies[mapping.key]
            if source is None or not plan.faithful[mapping.key]:
                continue
            for path, pointer, value in walk(body):
                if type_class(value) in ("number", "string", "boolean"):
                    occurrences.setdefault(path, []).append((mapping.key, list(pointer)))
        requests = plan.requests_of([p for m in mappings for p in plan.faithful[m.key]])
        for path in sorted(occurrences):
            stats = stats_by_path.get(path)
            if stats is None or stats.redacted or "null" in stats.classes:
                continue
            if not set(stats.classes) <= {"number", "string", "boolean"}:
                continue
            by_mapping = {}
            for mapping_key, pointer in occurrences[path]:
                by_mapping.setdefault(mapping_key, []).append(pointer)
            ops = [{"mapping": k, "op": "null", "pointers": v} for k, v in sorted(by_mapping.items())]
            pool["nullability"].append(
                (endpoint, _mutation(plan, "nullability", list(by_mapping), path, requests,
                                     f"{endpoint}: {path} → null in {len(by_mapping)} mapping(s), "
                                     f"{len(occurrences[path])} place(s)", ops,
                                     evidence={"samples": stats.count, "distinct_requests": len(stats.requests)})))
    return pool


# Per statistical kind, this many mutations with enough evidence are queued before any below it
COUNTED_FIRST = 14


def _interleave(entries, rng):
    """(group, mutation) pairs as a list in which the groups (endpoints) take turns; seeded."""
    groups = {}
    for group, mutation in entries:
        groups.setdefault(group, []).append(mutation)
    order = sorted(groups)
    rng.shuffle(order)
    for group in order:
        rng.shuffle(groups[group])
    interleaved = []
    while any(groups[g] for g in order):
        for group in order:
            if groups[group]:
                interleaved.append(groups[group].pop(0))
    return interleaved


def select(pools, count, rng):
    """Up to `count` mutations: kinds take turns; within a kind, endpoints take turns; seeded.

    A statistical kind queues COUNTED_FIRST mutations whose path has the evidence driftcheck
    needs first, then alternates below-evidence ones (run and reported, not counted) and the
    rest, so that each kind keeps COUNTED_FIRST counted mutations where it has that many.
    """
    queues = {}
    for kind in KINDS:
        entries = pools.get(kind, [])
        if kind not in STATISTICAL:
            queues[kind] = _interleave(entries, rng)
            continue
        counted = _interleave([e for e in entries if not e[1]["below_evidence"]], rng)
        below = _interleave([e for e in entries if e[1]["below_evidence"]], rng)
        queue, counted = counted[:COUNTED_FIRST], counted[COUNTED_FIRST:]
        while counted or below:
            for part in (below, counted):
                if part:
                    queue.append(part.pop(0))
        queues[kind] = queue
    chosen = []
    while len(chosen) < count and any(queues.values()):
        for kind in KINDS:
            if queues[kind] and len(chosen) < count:
                chosen.append(queues[kind].pop(0))
    return chosen


# ---------------------------------------------------------------- applying


def _resolve(document, index):
    return document if index is None else document["mappings"][index]


def _navigate(body, pointer):
    node = body
    for step in pointer:
        node = node[step]
    return node


def apply(mutation, service_dir):
    """Applies `mutation` in place to `service_dir` (a fresh copy of one service's mocks)."""
    by_file = {}
    for op in mutation["ops"]:
        file, _, index = op["mapping"].partition("#")
        by_file.setdefault(file, []).append((int(index) if index else None, op))
    for file, ops in by_file.items():
        path = os.path.join(service_dir, file)
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        deletions = []
        for index, op in ops:
            if op["op"] == "delete-mapping":
                deletions.append(index)
                continue
            mapping = _resolve(document, index)
            response = mapping.setdefault("response", {})
            if op["op"] == "status":
                response["status"] = op["value"]
            elif op["op"] == "header":
                response.setdefault("headers", {})[op["name"]] = op["value"]
            else:
                holder = wiremock.Mapping(file, index, mapping, 0)
                source, body = mapping_body(holder, service_dir)
                if source is None:
                    raise ValueError(f"{op['mapping']}: no JSON body to mutate")
                if op["op"] == "set":
                    parent = _navigate(body, op["pointer"][:-1])
                    if op["pointer"]:
                        parent[op["pointer"][-1]] = op["value"]
                    else:
                        body = op["value"]
                elif op["op"] == "null":
                    for pointer in op["pointers"]:
                        _navigate(body, pointer[:-1])[pointer[-1]] = None
                elif op["op"] == "add":
                    _navigate(body, op["pointer"])[op["name"]] = op["value"]
                elif op["op"] == "delete":
                    for pointer in op["pointers"]:
                        del _navigate(body, pointer[:-1])[pointer[-1]]
                else:
                    raise ValueError(f"unknown op {op['op']}")
                if source == "jsonBody":
                    response["jsonBody"] = body
                elif source == "body":
                    response["body"] = json.dumps(body)
                else:  # bodyFileName: the shared file stays, this mapping gets its own inline body
                    response.pop("bodyFileName", None)
                    response["jsonBody"] = body
        if deletions:
            if None in deletions:
                os.remove(path)
                continue
            for index in sorted(deletions, reverse=True):
                del document["mappings"][index]
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, ensure_ascii=False)
            handle.write("\n")


def fresh_copy(source_dir, target_dir):
    if os.path.exists(target_dir):
        shutil.rmtree(target_dir)
    shutil.copytree(source_dir, target_dir)


def generate(plan, count, seed):
    rng = random.Random(f"{seed}:{plan.service}")
    pools = candidates(plan)
    available = {kind: len(pool) for kind, pool in pools.items()}
    below = {kind: sum(1 for _group, m in pool if m["below_evidence"]) for kind, pool in pools.items()
             if kind in STATISTICAL}
    chosen = select(pools, count, rng)
    for number, mutation in enumerate(chosen, 1):
        mutation["id"] = f"{plan.service}-{number:03d}"
    return chosen, available, below


def deep(value):
    return copy.deepcopy(value)
