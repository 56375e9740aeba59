#!/usr/bin/env python3
"""driftcheck evaluation on real third-party servers (see scripts/eval/README.md).

Per app: start it, record a scripted workload through `driftcheck record`, export WireMock
mocks, compare the untouched export (baseline: every finding is a false positive), then
apply seeded mutations one at a time and score which findings driftcheck reports.
"""

import argparse
import concurrent.futures
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import apps  # noqa: E402
import mutate  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))


class Operational(Exception):
    """The evaluation could not run (as opposed to driftcheck reporting poorly)."""


# ---------------------------------------------------------------- running driftcheck


def binary():
    return os.environ.get("DRIFTCHECK") or os.path.join(ROOT, ".build", "debug", "driftcheck")


def binary_fingerprint():
    path = binary()
    try:
        stat = os.stat(path)
        return f"{stat.st_size}:{int(stat.st_mtime)}"
    except OSError:
        return "missing"


def _transient(returncode, stderr, attempt):
    """A binary being relinked: not executable yet, or a half-written file that dies at once."""
    text = stderr or ""
    if returncode in (126, 127) or "Text file busy" in text:
        return True
    return returncode < 0 and attempt == 0  # a crash is retried once, then reported as what it is


def wait_for_binary(timeout=900):
    deadline = time.monotonic() + timeout
    while not os.access(binary(), os.X_OK):
        if time.monotonic() > deadline:
            raise Operational(f"{binary()} does not exist (set DRIFTCHECK or build it)")
        time.sleep(2)


def driftcheck(args, cwd, timeout=600, attempts=8):
    """Runs the driftcheck binary; retries while it is missing or being rewritten."""
    for attempt in range(attempts):
        wait_for_binary()
        try:
            done = subprocess.run([binary()] + args, cwd=cwd, capture_output=True, text=True, errors="replace",
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except OSError as error:
            if error.errno in (errno.ETXTBSY, errno.ENOENT, errno.EACCES, errno.ENOEXEC) and attempt + 1 < attempts:
                time.sleep(2 + attempt * 2)
                continue
            raise
        if _transient(done.returncode, done.stderr, attempt) and attempt + 1 < attempts:
            time.sleep(2 + attempt * 2)
            continue
        return done
    raise Operational(f"driftcheck {' '.join(args)}: binary kept failing to start")


def start_recorder(store, service, upstream, workdir):
    """`driftcheck record` in reverse-proxy mode on an OS-assigned port; returns (Server, url)."""
    last = None
    for attempt in range(8):
        wait_for_binary()
        argv = [binary(), "record", "--store", store, "--upstream", f"{service}={upstream}@127.0.0.1:0"]
        try:
            server = apps.Server(argv, os.path.join(workdir, "record.log"),
                                 r"driftcheck: listening on http://127\.0\.0\.1:(\d+)", cwd=workdir)
        except OSError as error:
            last = error
            time.sleep(2 + attempt * 2)
            continue
        try:
            port = server.wait_port(60)
            return server, f"http://127.0.0.1:{port}"
        except RuntimeError as error:
            last = error
            server.stop(signal.SIGKILL)
            time.sleep(2 + attempt * 2)
    raise Operational(f"driftcheck record did not start: {last}")


# ---------------------------------------------------------------- recordings


def read_har(path):
    with open(path, encoding="utf-8") as handle:
        har = json.load(handle)
    exchanges = []
    for entry in har["log"]["entries"]:
        request, response = entry["request"], entry["response"]
        parts = urllib.parse.urlsplit(request["url"])
        target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        body = (request.get("postData") or {}).get("text", "")
        content = response.get("content") or {}
        text = content.get("text", "")
        if content.get("encoding") == "base64":
            import base64
            try:
                text = base64.b64decode(text).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                text = ""
        headers = [(h["name"], h["value"]) for h in response.get("headers", [])]
        content_type = next((v for k, v in headers if k.lower() == "content-type"), content.get("mimeType", ""))
        parsed = None
        if text and mutate.is_json_media(content_type):
            try:
                parsed = {"value": json.loads(text)}
            except ValueError:
                parsed = None
        exchanges.append({
            "method": request["method"].upper(), "target": target, "path": parts.path or "/",
            "request_headers": [(h["name"], h["value"]) for h in request.get("headers", [])],
            "request_body": body, "status": response.get("status"), "response_headers": headers, "json": parsed,
        })
    return exchanges


def client_exchanges(log_entries):
    exchanges = []
    for x in log_entries:
        parts = urllib.parse.urlsplit(x["target"])
        content_type = next((v for k, v in x["response_headers"] if k.lower() == "content-type"), "")
        parsed = None
        if x["response_body"] and mutate.is_json_media(content_type):
            try:
                parsed = {"value": json.loads(x["response_body"])}
            except ValueError:
                pass
        exchanges.append({
            "method": x["method"].upper(), "target": x["target"], "path": parts.path or "/",
            "request_headers": x["request_headers"], "request_body": x["request_body"], "status": x["status"],
            "response_headers": x["response_headers"], "json": parsed,
        })
    return exchanges


def findings_of(done, where):
    if done.returncode not in (0, 1):
        return None, f"{where}: exit {done.returncode}: {done.stderr.strip()[-2000:]}"
    try:
        report = json.loads(done.stdout)
    except ValueError as error:
        return None, f"{where}: report is not JSON ({error}): {done.stdout[:300]!r} {done.stderr.strip()[-500:]}"
    return report.get("findings", []), None


def finding_key(finding):
    return (finding.get("service"), finding.get("endpoint"), finding.get("kind"), finding.get("path"))


def brief(finding):
    return {k: finding.get(k) for k in ("service", "endpoint", "kind", "severity", "path", "message", "real", "mock")}


def is_hit(finding, expected):
    if finding.get("service") != expected.get("service", finding.get("service")):
        return False
    if finding.get("kind") != expected["kind"]:
        return False
    if finding.get("path") != expected["path"]:
        return False
    endpoint = finding.get("endpoint") or ""
    return any(mutate.endpoint_matches(endpoint, method, path) for method, path in expected["requests"])


# ---------------------------------------------------------------- one app


def log(message):
    print(message, file=sys.stderr, flush=True)


def run_app(app_cls, args, venv_bin, out_root):
    name = app_cls.name
    workdir = os.path.join(out_root, name)
    if os.path.exists(workdir):
        shutil.rmtree(workdir)
    os.makedirs(workdir)
    store = os.path.join(workdir, "recordings.sqlite")
    mocks = os.path.join(workdir, "mocks")
    har = os.path.join(workdir, "recordings.har")
    app = app_cls(workdir, venv_bin, args.seed)
    notes = []
    started = time.monotonic()

    # a-d: app, recorder, workload, flush
    log(f"[{name}] starting {app_cls.package}")
    upstream = app.start()
    recorder = None
    try:
        recorder, listener = start_recorder(store, app.service, upstream, workdir)
        log(f"[{name}] app at {upstream}, recorder at {listener}")
        client = apps.Client(listener)
        app.workload(client)
        recorder_status = recorder.stop(signal.SIGINT, timeout=120)
        recorder = None
        if recorder_status != 0:
            raise Operational(f"[{name}] driftcheck record exited {recorder_status}; see {workdir}/record.log")
    finally:
        if recorder is not None:
            recorder.stop(signal.SIGKILL)
        app.stop()
    with open(os.path.join(workdir, "workload.jsonl"), "w", encoding="utf-8") as handle:
        for exchange in client.log:
            handle.write(json.dumps(exchange) + "\n")
    log(f"[{name}] {len(client.log)} exchanges driven")

    # e: list, export
    done = driftcheck(["list", "--json", "--store", store], workdir)
    if done.returncode != 0:
        raise Operational(f"[{name}] driftcheck list: exit {done.returncode}: {done.stderr}")
    listing = json.loads(done.stdout)
    templates = [e["endpoint"] for s in listing.get("services", []) if s.get("name") == app.service
                 for e in s.get("endpoints", [])]
    step = ["export", "--wiremock", mocks, "--store", store]
    done = driftcheck(step, workdir)
    if done.returncode != 0:
        raise Operational(f"[{name}] driftcheck {' '.join(step)}: exit {done.returncode}: {done.stderr}")
    service_dir = os.path.join(mocks, app.service)
    if not os.path.isdir(os.path.join(service_dir, "mappings")):
        raise Operational(f"[{name}] export wrote no {service_dir}/mappings")
    # the recordings as replay sees them (redacted): the HAR export; the client's own log if that fails
    done = driftcheck(["export", "--har", har, "--store", store], workdir)
    try:
        if done.returncode != 0:
            raise ValueError(f"exit {done.returncode}: {done.stderr.strip()}")
        exchanges = read_har(har)
    except (ValueError, KeyError, OSError) as error:
        notes.append(f"export --har failed ({error}); reality taken from the client's log (unredacted)")
        exchanges = client_exchanges(client.log)
    if len(exchanges) != len(client.log):
        notes.append(f"the store holds {len(exchanges)} exchanges, the client made {len(client.log)}")
    for position, (mine, stored) in enumerate(zip(client.log, exchanges)):
        if mine["method"] != stored["method"] or mine["status"] != stored["status"]:
            notes.append(f"exchange {position}: client saw {mine['method']} {mine['target']} → {mine['status']}, "
                         f"store has {stored['method']} {stored['target']} → {stored['status']}")
            break

    endpoints = mutate.Endpoints(templates)
    reality = mutate.Reality(exchanges, endpoints)
    plan = mutate.Plan(app.service, service_dir, reality, endpoints)

    # f: baseline
    compare_store = os.path.join(workdir, "compare-store")
    os.makedirs(compare_store)
    stores = []
    for slot in range(args.jobs):
        copy = os.path.join(compare_store, f"slot{slot}.sqlite")
        shutil.copyfile(store, copy)
        stores.append(copy)

    def compare(mocks_dir, store_copy):
        return driftcheck(["compare", mocks_dir, "--store", store_copy, "--format", "json", "--output", "-",
                           "--fail-on", "never", "--no-color"], workdir)

    t0 = time.monotonic()
    done = compare(mocks, stores[0])
    baseline_seconds = time.monotonic() - t0
    baseline, error = findings_of(done, f"[{name}] baseline compare")
    if baseline is None:
        raise Operational(error)
    with open(os.path.join(workdir, "baseline.json"), "w", encoding="utf-8") as handle:
        handle.write(done.stdout)
    baseline_keys = {finding_key(f) for f in baseline}
    log(f"[{name}] baseline: {len(baseline)} findings ({baseline_seconds:.1f}s per compare)")

    # g: mutations
    mutations, available, available_below = mutate.generate(plan, args.mutations, args.seed)
    log(f"[{name}] {len(mutations)} mutations, {sum(1 for m in mutations if m['below_evidence'])} of them below "
        f"evidence (candidates per kind: {available}; below evidence: {available_below})")
    slots = list(range(args.jobs))
    slot_lock = threading.Lock()

    def run_one(mutation):
        with slot_lock:
            slot = slots.pop()
        try:
            target = os.path.join(workdir, "work", f"slot{slot}")
            os.makedirs(target, exist_ok=True)
            service_copy = os.path.join(target, app.service)
            mutate.fresh_copy(service_dir, service_copy)
            mutate.apply(mutation, service_copy)
            done = compare(target, stores[slot])
            findings, error = findings_of(done, mutation["id"])
            result = {"error": error}
            if findings is not None:
                hits = [f for f in findings if is_hit(f, mutation["expected"])]
                implied = [f for f in findings if f not in hits
                           and any(is_hit(f, dict(i, service=app.service)) for i in mutation["implied"])]
                others = [f for f in findings if f not in hits and f not in implied]
                extra = [f for f in others if finding_key(f) not in baseline_keys]
                result.update({
                    "detected": bool(hits),
                    "hits": [brief(f) for f in hits],
                    "implied_findings": [brief(f) for f in implied],
                    "hit_also_in_baseline": any(finding_key(f) in baseline_keys for f in hits),
                    "extra": [brief(f) for f in extra],
                    "baseline_repeated": len(others) - len(extra),
                    "near_misses": [brief(f) for f in extra if f.get("service") == mutation["expected"]["service"]
                                    and (f.get("kind") == mutation["expected"]["kind"]
                                         or f.get("path") == mutation["expected"]["path"])],
                })
            else:
                result.update({"detected": False, "hits": [], "implied_findings": [], "extra": [], "near_misses": []})
            return result
        finally:
            with slot_lock:
                slots.append(slot)

    results = []
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for number, (mutation, result) in enumerate(zip(mutations, pool.map(run_one, mutations)), 1):
            mutation = dict(mutation)
            mutation.pop("ops")
            mutation.update(result)
            results.append(mutation)
            if number % 25 == 0 or number == len(mutations):
                log(f"[{name}] {number}/{len(mutations)} compared ({time.monotonic() - t0:.0f}s)")
    errors = [r for r in results if r["error"]]
    if mutations and len(errors) == len(mutations):
        raise Operational(f"[{name}] every mutated compare failed, e.g. {errors[0]['error']}")
    if not args.keep:
        shutil.rmtree(os.path.join(workdir, "work"), ignore_errors=True)
        shutil.rmtree(compare_store, ignore_errors=True)
    return {
        "app": name,
        "package": app_cls.package,
        "version": package_version(venv_bin, app_cls.package),
        "exchanges": len(exchanges),
        "endpoints": len(templates),
        "plan": plan.summary(),
        "candidates": available,
        "candidates_below_evidence": available_below,
        "baseline": [brief(f) for f in baseline],
        "mutations": results,
        "notes": notes,
        "seconds": round(time.monotonic() - started, 1),
    }


def package_version(venv_bin, package):
    done = subprocess.run([os.path.join(venv_bin, "python"), "-c",
                           f"import importlib.metadata as m; print(m.version({package!r}))"],
                          capture_output=True, text=True)
    return done.stdout.strip() or None


# ---------------------------------------------------------------- scoring and tables


def score(mutations):
    """Per kind and in total. A below-evidence mutation is not in `mutations`, `detected` or
    `recall` (driftcheck must not claim it); it is in `below_evidence` and `reported_anyway`
    (its expected finding came anyway: a correct finding, not an extra), and its findings count
    towards precision and `extra` like every other compare's."""
    rows = {}
    for kind in mutate.KINDS + ["total"]:
        rows[kind] = {"mutations": 0, "detected": 0, "errors": 0, "true_findings": 0, "implied": 0, "extra": 0,
                      "below_evidence": 0, "reported_anyway": 0}
    for m in mutations:
        for kind in (m["kind"], "total"):
            row = rows[kind]
            if m.get("below_evidence"):
                row["below_evidence"] += 1
                row["reported_anyway"] += 1 if m["detected"] else 0
            else:
                row["mutations"] += 1
                row["detected"] += 1 if m["detected"] else 0
            row["errors"] += 1 if m["error"] else 0
            row["true_findings"] += len(m["hits"])
            row["implied"] += len(m["implied_findings"])
            row["extra"] += len(m["extra"])
    for row in rows.values():
        row["recall"] = round(100.0 * row["detected"] / row["mutations"], 1) if row["mutations"] else None
        reported = row["true_findings"] + row["implied"] + row["extra"]
        correct = row["true_findings"] + row["implied"]
        row["precision"] = round(100.0 * correct / reported, 1) if reported else None
    return {k: v for k, v in rows.items() if v["mutations"] or v["below_evidence"] or k == "total"}


def table(rows, title):
    def pct(value):
        return "n/a" if value is None else f"{value:.1f}%"

    def below(row):
        return f"{row['below_evidence']}/{row['reported_anyway']}" if row["below_evidence"] else "-"

    lines = [title, f"  {'kind':<15}{'mutations':>10}{'detected':>10}{'recall':>9}{'extra':>8}{'precision':>11}"
             f"{'implied':>9}{'errors':>8}{'below-ev run/reported':>23}"]
    for kind, row in rows.items():
        if kind == "total":
            lines.append("  " + "-" * 101)
        lines.append(f"  {kind:<15}{row['mutations']:>10}{row['detected']:>10}{pct(row['recall']):>9}"
                     f"{row['extra']:>8}{pct(row['precision']):>11}{row['implied']:>9}{row['errors']:>8}"
                     f"{below(row):>23}")
    total = rows["total"]
    lines.append(f"  below evidence: {total['below_evidence']} run, {total['reported_anyway']} reported anyway "
                 f"(not in mutations or recall)")
    return "\n".join(lines)


def describe_finding(f):
    text = f"{f.get('kind')} {f.get('endpoint')} {f.get('path')}"
    if f.get("message"):
        text += f" — {f['message']}"
    return text


def plural(n, noun):
    return f"{n} {noun}" + ("" if n == 1 else "s")


def describe_mutation(m, outcome=None):
    """Lines about one mutation: what it expected and on which request, the evidence behind
    it, what it changed, and what driftcheck reported instead."""
    facts = []
    claim = m.get("claim_evidence")
    if claim:
        pool = f"status {claim['status']}, query {claim['variant']}" if "variant" in claim else "no pool"
        facts.append(plural(claim["samples"], "sample") + ", " + plural(claim["sources"], "source")
                     + (f", {claim['distinct']} distinct" if "distinct" in claim else "") + f" in {pool}")
    elif m.get("evidence"):
        facts.append(f"{m['evidence']['samples']} real samples from {m['evidence']['distinct_requests']} "
                     f"distinct requests")
    if m.get("volatile"):
        facts.append("the real value varies between identical requests")
    if outcome:
        facts.append(outcome)
    request = m["expected"]["requests"][0]
    lines = [f"  {m['id']:<14} {m['kind']:<14} expected {m['expected']['path']} on {request[0]} {request[1]}"
             + (f" ({'; '.join(facts)})" if facts else ""),
             f"{'':18}{m['description']}"]
    if not m["detected"] and m.get("near_misses"):
        lines.append(f"{'':18}reported instead: {describe_finding(m['near_misses'][0])}")
    elif not m["detected"] and m.get("implied_findings"):
        lines.append(f"{'':18}reported instead (implied, correct): {describe_finding(m['implied_findings'][0])}")
    if m["error"]:
        lines.append(f"{'':18}error: {m['error']}")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--apps", default="datasette,jupyter", help="comma-separated: " + ",".join(apps.APPS))
    parser.add_argument("--mutations", type=int, default=200, help="mutations per app")
    parser.add_argument("--jobs", type=int, default=2, help="compares in parallel")
    parser.add_argument("--out", default=os.path.join(ROOT, ".build-eval"))
    parser.add_argument("--venv", default=os.path.join(ROOT, ".build-eval-venv"))
    parser.add_argument("--keep", action="store_true", help="keep the mutated mock copies and store copies")
    parser.add_argument("--gate", type=float, metavar="RECALL",
                        help="exit 1 unless total recall is at least RECALL %% with no extra and no baseline finding")
    args = parser.parse_args()

    started = time.monotonic()
    os.makedirs(args.out, exist_ok=True)
    venv_bin = os.path.join(args.venv, "bin")
    fingerprint = binary_fingerprint()
    per_app = []
    try:
        for name in [a.strip() for a in args.apps.split(",") if a.strip()]:
            if name not in apps.APPS:
                raise Operational(f"unknown app {name!r}; known: {', '.join(apps.APPS)}")
            per_app.append(run_app(apps.APPS[name], args, venv_bin, args.out))
    except Operational as error:
        log(f"eval: {error}")
        return 2
    except Exception as error:  # an app that would not start or answer is an operational failure
        import traceback
        traceback.print_exc()
        log(f"eval: {error}")
        return 2

    all_mutations = [m for a in per_app for m in a["mutations"]]
    results = {
        "version": 1,
        "seed": args.seed,
        "driftcheck": binary(),
        "binary_changed_during_run": binary_fingerprint() != fingerprint,
        "seconds": round(time.monotonic() - started, 1),
        "apps": [],
        "total": score(all_mutations),
    }
    out = []
    for a in per_app:
        rows = score(a["mutations"])
        summary = {k: a[k] for k in ("app", "package", "version", "exchanges", "endpoints", "plan", "candidates",
                                     "candidates_below_evidence", "notes", "seconds")}
        summary["baseline_findings"] = a["baseline"]
        summary["by_kind"] = rows
        summary["mutations"] = a["mutations"]
        results["apps"].append(summary)
        out.append(table(rows, f"{a['app']} ({a['package']} {a['version']}): {a['exchanges']} exchanges, "
                               f"{a['endpoints']} endpoints, {a['plan']['mappings']} mappings exported, "
                               f"{a['seconds']:.0f}s"))
        out.append(f"  baseline (unmutated export): {len(a['baseline'])} finding(s)"
                   + (" — each one a false positive:" if a["baseline"] else ""))
        for f in a["baseline"]:
            out.append(f"    {describe_finding(f)}")
        for note in a["notes"]:
            out.append(f"  note: {note}")
        out.append("")
    out.append(table(results["total"], f"all apps: {len(all_mutations)} mutations, seed {args.seed}"))

    # the extra findings, grouped so a pattern shows; every one is in results.json with its mutation
    groups = {}
    for a in per_app:
        for m in a["mutations"]:
            for f in m["extra"]:
                key = (a["app"], m["kind"], f.get("kind"))
                groups.setdefault(key, []).append((m["id"], f))
    if groups:
        out.append("")
        out.append("extra findings (not the expected one, not in the baseline), by mutation kind → finding kind:")
        for (app_name, mkind, fkind), items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            example_id, example = items[0]
            out.append(f"  {app_name:<10} {mkind:<14} → {fkind:<14} {len(items):>4}  e.g. {example_id}: "
                       f"{example.get('endpoint')} {example.get('path')}")
    missed = [m for m in all_mutations if not m["detected"] and not m.get("below_evidence")]
    if missed:
        out.append("")
        out.append(f"missed mutations: {len(missed)} (each in results.json); up to 3 per kind:")
        shown = {}
        for m in missed:
            shown[m["kind"]] = shown.get(m["kind"], 0) + 1
            if shown[m["kind"]] > 3:
                continue
            out.extend(describe_mutation(m))
        out.append("  missed per kind: " + ", ".join(f"{k} {n}" for k, n in shown.items()))
    volatile = [m for m in all_mutations if m.get("volatile")]
    if volatile:
        out.append(f"  of all mutations, {len(volatile)} changed a value that varies between identical real "
                   f"requests; {sum(1 for m in volatile if m['detected'])} of them detected")
    below = [m for m in all_mutations if m.get("below_evidence")]
    if below:
        out.append("")
        out.append(f"below evidence: {len(below)} run, {sum(1 for m in below if m['detected'])} reported anyway "
                   f"(statistical mutations where driftcheck's pool at the path is under min-samples "
                   f"{mutate.MIN_SAMPLES}, min-requests {mutate.MIN_SOURCES}, enum-samples {mutate.ENUM_SAMPLES}; "
                   f"not in recall); up to 2 per app and kind:")
        shown = {}
        listed = {}
        for m in below:
            shown.setdefault(m["kind"], [0, 0])
            shown[m["kind"]][0] += 1
            shown[m["kind"]][1] += 1 if m["detected"] else 0
            listed[(m["service"], m["kind"])] = listed.get((m["service"], m["kind"]), 0) + 1
            if listed[(m["service"], m["kind"])] <= 2:
                out.extend(describe_mutation(m, "reported anyway" if m["detected"] else "not reported"))
        out.append("  per kind (run/reported anyway): "
                   + ", ".join(f"{k} {run}/{hit}" for k, (run, hit) in shown.items()))
    if results["binary_changed_during_run"]:
        out.append("")
        out.append("warning: the driftcheck binary changed during the run; numbers may mix two builds")
    out.append("")
    out.append(f"took {results['seconds']:.0f}s; details: {os.path.join(args.out, 'results.json')}")
    text = "\n".join(out)
    print(text)
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    with open(os.path.join(args.out, "results.txt"), "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    if args.gate is not None:
        total = results["total"]["total"]
        baseline = sum(len(a["baseline_findings"]) for a in results["apps"])
        failures = []
        if (total["recall"] or 0) < args.gate:
            failures.append(f"recall {total['recall']}% < {args.gate}%")
        if total["extra"]:
            failures.append(f"{total['extra']} extra finding(s)")
        if baseline:
            failures.append(f"{baseline} finding(s) on the unmutated export")
        if failures:
            print("eval gate failed: " + "; ".join(failures), file=sys.stderr)
            return 1
        print(f"eval gate passed: recall {total['recall']}% >= {args.gate}%, no extra finding, clean baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
