#!/usr/bin/env python3
"""The integration chapter of docs/USER_GUIDE.md, run against the real binary.

Called by scripts/check-guide (which builds, or takes BIN=/dir). Every ```sh block of
"## Integrating your app" (up to "### Typed clients and the API reference") holds `curl`
commands; each becomes a real request to a fresh `stripe-manager serve` on the fake
Stripe, and its answer is checked against what the chapter documents after it:

- the status: any 2xx, or the one a `# 201 …` comment names;
- the body, when a `# {…}` comment shows one: every key shown is in the answer, and every
  value shown matches, except what `…` elides (`"hold_…"` is any string starting with
  `hold_`; a bare `…` in an object or array stands for more keys or elements).

How `…` in a command is resolved: `…/api/v1/…` is the service; `…/credits/…` is under
`/api/v1/accounts/user_42`; `hold_…` is the hold the last hold creation returned; a JSON
value `"…"` is filled in by its key (the URLs of a checkout). The doc's `price_pack` is
the fake's demo "Starter pack" price. Each request carries the token the chapter gives
that call: `$GRANT_TOKEN` (`credits:grant`), `$GATE_TOKEN` (`entitlements:read`), else
the app token (its scopes are read from the chapter), else the `billing:write` token —
whichever holds the route's scope in openapi/v1.json.

What the examples need is set up first: the fake's demo catalog with a feature
`advanced_export` ("Advanced export") attached to its Pro plan, synced; user_42 buys the
Pro plan through a checkout the fake completes (credits, a Stripe customer, an active
subscription, so the gate says `entitled`). The events to the app go to a receiver here;
each one's signature is verified, and its `data` must carry the keys the chapter's event
table lists for its type.

Runs on SQLite, and on PostgreSQL (a fresh database) when SM_TEST_POSTGRES_URL is set and
SM_SKIP_POSTGRES is not 1. Exit 1 with the doc line and what differed.
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDE = os.path.join(ROOT, "docs", "USER_GUIDE.md")
START = "## Integrating your app"
END = "### Typed clients and the API reference"
ACCOUNT = "user_42"
ELLIPSIS = "\u2026"
NAME = "check-guide"


class Failure(Exception):
    pass


def say(msg):
    print(f"{NAME}: {msg}", flush=True)


# ---------------------------------------------------------------- the chapter


def read_chapter():
    """The chapter's lines as (line number, text), and its ```sh blocks."""
    with open(GUIDE, encoding="utf-8") as f:
        lines = f.read().split("\n")
    try:
        start = next(i for i, l in enumerate(lines) if l.strip() == START)
        end = next(i for i, l in enumerate(lines) if i > start and l.strip() == END)
    except StopIteration:
        raise Failure(f"the chapter ({START!r} … {END!r}) was not found in docs/USER_GUIDE.md")
    chapter = [(i + 1, lines[i]) for i in range(start, end)]
    blocks, block, fence = [], None, None
    for n, text in chapter:
        if block is None and text.startswith("```"):
            fence = text[3:].strip()
            block = []
        elif block is not None and text.startswith("```"):
            if fence in ("sh", "bash", "shell"):
                blocks.append(block)
            block = None
        elif block is not None:
            block.append((n, text))
    return chapter, blocks


def app_scopes(chapter):
    """The scopes the chapter tells to give the app's token."""
    text = " ".join(t for _, t in chapter)
    m = re.search(r"give the app one token with\s+`([^`]+)`", text)
    if not m:
        raise Failure("the app token's scopes (\"give the app one token with `…`\") were not found in the chapter")
    return m.group(1).split(",")


def split_comment(line):
    """`code # comment` -> (code, comment or None), `#` outside quotes at a word start."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i], line[i + 1:]
    return line, None


def commands(blocks):
    """Each curl command of the blocks: its first line, its words, what the doc says of it."""
    out = []
    for block in blocks:
        i = 0
        while i < len(block):
            n, text = block[i]
            code, comment = split_comment(text)
            if not code.strip():
                if comment is not None and out and out[-1]["block"] is block:
                    out[-1]["comments"].append((n, comment))
                    i += 1
                    continue
                if not text.strip():
                    i += 1
                    continue
                raise Failure(f"docs/USER_GUIDE.md:{n}: a comment before any command in a sh block: {text!r}")
            if not code.lstrip().startswith("curl "):
                raise Failure(f"docs/USER_GUIDE.md:{n}: not a curl command, which this check cannot run: {text!r}")
            # Continued by a trailing backslash or by an open quote.
            joined, comments = code, []
            if comment is not None:
                comments.append((n, comment))
            while True:
                stripped = joined.rstrip()
                if stripped.endswith("\\"):
                    joined = stripped[:-1] + " "
                else:
                    try:
                        words = shlex.split(joined)
                        break
                    except ValueError:
                        joined += "\n"
                i += 1
                if i >= len(block):
                    raise Failure(f"docs/USER_GUIDE.md:{n}: the command does not end in its block")
                more, comment = split_comment(block[i][1])
                joined += more
                if comment is not None:
                    comments.append((block[i][0], comment))
            out.append({"line": n, "words": words, "comments": comments, "block": block})
            i += 1
    return out


def parse_curl(cmd):
    """curl's words -> method, url, headers, data."""
    words, n = cmd["words"], cmd["line"]
    method, url, headers, data = None, None, [], None
    it = iter(words[1:])
    for w in it:
        if w in ("-X", "--request"):
            method = next(it)
        elif w in ("-H", "--header"):
            headers.append(next(it))
        elif w in ("-d", "--data", "--data-raw"):
            data = next(it)
        elif w in ("-s", "--silent", "-S", "--show-error", "-f", "--fail"):
            pass
        elif w.startswith("-"):
            raise Failure(f"docs/USER_GUIDE.md:{n}: curl option {w} is not understood by this check")
        elif url is None:
            url = w
        else:
            raise Failure(f"docs/USER_GUIDE.md:{n}: two URLs in one curl command: {url} {w}")
    if url is None:
        raise Failure(f"docs/USER_GUIDE.md:{n}: a curl command without a URL")
    method = method or ("POST" if data is not None else "GET")
    return method, url, headers, data


def documented(cmd):
    """The status and body the comments after a command document, or None."""
    status, body_text, depth, collecting, line = None, "", 0, False, cmd["line"]
    quoted = False
    for n, c in cmd["comments"]:
        c = c.strip()
        if not collecting:
            m = re.match(r"(\d{3})\b\s*(.*)", c)
            if m and status is None:
                status, c = int(m.group(1)), m.group(2)
            j = c.find("{")
            if j < 0:
                continue
            c, collecting, line = c[j:], True, n
        for ch in c:
            body_text += ch
            if quoted:
                quoted = not (ch == '"' and not body_text.endswith('\\"'))
            elif ch == '"':
                quoted = True
            elif ch in "{[":
                depth += 1
            elif ch in "}]":
                depth -= 1
                if depth == 0:
                    break
        if depth == 0:
            break
    if collecting and depth != 0:
        raise Failure(f"docs/USER_GUIDE.md:{line}: the documented answer does not close: {body_text!r}")
    body = parse_elided(body_text, cmd["line"]) if collecting else None
    return status, body


def parse_elided(text, n):
    """JSON where a bare `…` elides keys or elements: they become `"…": true` / `"…"`."""
    out, stack, quote, i = [], [], False, 0
    while i < len(text):
        c = text[i]
        if quote:
            out.append(c)
            if c == "\\":
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                quote = False
        elif c == '"':
            quote = True
            out.append(c)
        elif c in "{[":
            stack.append(c)
            out.append(c)
        elif c in "}]":
            stack.pop()
            out.append(c)
        elif c == ELLIPSIS:
            out.append(f'"{ELLIPSIS}": true' if stack and stack[-1] == "{" else f'"{ELLIPSIS}"')
        else:
            out.append(c)
        i += 1
    try:
        return json.loads("".join(out))
    except json.JSONDecodeError as e:
        raise Failure(f"docs/USER_GUIDE.md:{n}: the documented answer is not JSON ({e}): {text}")


def mismatch(doc, real, ids, path="$"):
    """Why the real answer differs from the documented one, or None."""
    if isinstance(doc, dict):
        if not isinstance(real, dict):
            return f"{path}: documented an object, got {json.dumps(real)}"
        for k, v in doc.items():
            if k == ELLIPSIS:
                continue
            if k not in real:
                return f"{path}: the key {k!r} is missing (got keys {sorted(real)})"
            why = mismatch(v, real[k], ids, f"{path}.{k}")
            if why:
                return why
        return None
    if isinstance(doc, list):
        if not isinstance(real, list):
            return f"{path}: documented an array, got {json.dumps(real)}"
        elided = ELLIPSIS in doc
        items = [d for d in doc if d != ELLIPSIS]
        if not elided and len(items) != len(real):
            return f"{path}: documented {len(items)} element(s), got {len(real)}: {json.dumps(real)}"
        left = list(real)
        for k, d in enumerate(items):
            found = next((r for r in left if mismatch(d, r, ids) is None), None)
            if found is None:
                return f"{path}[{k}]: no element matches {json.dumps(d)} in {json.dumps(real)}"
            left.remove(found)
        return None
    if isinstance(doc, str) and ELLIPSIS in doc:
        pattern = ".*".join(re.escape(p) for p in doc.split(ELLIPSIS))
        if isinstance(real, str) and re.fullmatch(pattern, real, re.S):
            return None
        return f"{path}: documented {json.dumps(doc)}, got {json.dumps(real)}"
    expected = ids.get(doc, doc) if isinstance(doc, str) else doc
    if type(expected) is not type(real) or expected != real:
        return f"{path}: documented {json.dumps(doc)}, got {json.dumps(real)}"
    return None


def event_table(chapter):
    """type -> (doc line, the top-level keys of its `data`), from the chapter's table."""
    table, prev = {}, None
    for n, t in chapter:
        m = re.match(r"\| `([a-z_]+\.[a-z_]+)` \|.*\|(.*)\|\s*$", t)
        if not m:
            continue
        data = m.group(2).strip()
        if data == "the same" and prev:
            table[m.group(1)] = (n, table[prev][1])
        else:
            depth, top = 0, ""
            for ch in data:
                depth += ch == "("
                if depth == 0:
                    top += ch
                depth -= ch == ")"
            table[m.group(1)] = (n, re.findall(r"`([a-z_]+)`", top))
        prev = m.group(1)
    if len(table) < 5:
        raise Failure("the chapter's table of events to the app was not found")
    return table


# ---------------------------------------------------------------- the service


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(method, url, body=None, headers=None, form=False):
    """-> (status, parsed JSON or text)."""
    headers = dict(headers or {})
    data = None
    if body is not None:
        if form:
            data = urllib.parse.urlencode(body).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        else:
            data = body.encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return status, raw.decode(errors="replace")


class Receiver(http.server.ThreadingHTTPServer):
    """The app's endpoint for the events: records them (2xx at once)."""

    def __init__(self, port, secret):
        self.events, self.secret = [], secret
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), ReceiverHandler)


class ReceiverHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            self.server.events.append((dict((k.lower(), v) for k, v in self.headers.items()), raw))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def verify_event(secret, headers, raw):
    """Standard Webhooks: v1,base64(HMAC-SHA256(key, id.timestamp.body))."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + raw
    want = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    got = [s.split(",", 1)[1] for s in headers.get("webhook-signature", "").split() if s.startswith("v1,")]
    return any(hmac.compare_digest(want, g) for g in got)


class Backend:
    """The fake Stripe, a migrated database, `serve`, the receiver, the tokens."""

    def __init__(self, bin_dir, db_url, label, tmp):
        self.bin, self.db, self.label, self.tmp = bin_dir, db_url, label, tmp
        self.procs = []
        self.receiver = None

    def cli(self, *args, ok=(0,)):
        # In the temporary directory, as `serve`: no .env of the checkout is read.
        p = subprocess.run([os.path.join(self.bin, "stripe-manager"), *args], env=self.env,
                           capture_output=True, text=True, timeout=60, cwd=self.tmp)
        if p.returncode not in ok:
            raise Failure(f"`stripe-manager {' '.join(args)}` exited {p.returncode} on {self.label}: {p.stderr.strip()[-2000:]}")
        return p.stdout

    def start(self):
        fake_out = open(os.path.join(self.tmp, f"fake-{self.label}.out"), "w+")
        self.procs.append(subprocess.Popen([os.path.join(self.bin, "fake-stripe"), "--port", "0"],
                                           stdout=fake_out, stderr=subprocess.STDOUT))
        for _ in range(100):
            fake_out.seek(0)
            m = re.search(r"^PORT (\d+)", fake_out.read(), re.M)
            if m:
                break
            time.sleep(0.1)
        else:
            raise Failure("the fake Stripe did not start")
        self.fake = f"http://127.0.0.1:{m.group(1)}"
        port, receiver = free_port(), free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.app_secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        self.receiver = Receiver(receiver, self.app_secret)
        threading.Thread(target=self.receiver.serve_forever, daemon=True).start()
        self.env = dict(os.environ, DATABASE_URL=self.db, BIND=f"127.0.0.1:{port}",
                        STRIPE_SECRET_KEY="sk_test_guide", STRIPE_API_BASE=self.fake,
                        STRIPE_WEBHOOK_SECRET="whsec_guide", STRIPE_CONNECTIVITY_TEST="false",
                        APP_WEBHOOK_URL=f"http://127.0.0.1:{receiver}/events",
                        APP_WEBHOOK_SECRET=self.app_secret, APP_WEBHOOK_ALLOW_PRIVATE="true",
                        RUST_LOG="warn")
        self.env.pop("CREDITS_LOW_THRESHOLD", None)

        # The chapter's feature, on the demo catalog's Pro plan, before the sync.
        st, products = self.stripe("GET", "/v1/products", {"limit": "100"})
        by_name = {p["name"]: p for p in products["data"]}
        if not {"Starter pack", "Pro plan"} <= set(by_name):
            raise Failure(f"the fake's demo catalog has no Starter pack and Pro plan: {sorted(by_name)}")
        st, feature = self.stripe("POST", "/v1/entitlements/features",
                                  {"name": "Advanced export", "lookup_key": "advanced_export"})
        if st != 200:
            raise Failure(f"the fake Stripe refused the feature: {feature}")
        st, attached = self.stripe("POST", f"/v1/products/{by_name['Pro plan']['id']}/features",
                                   {"entitlement_feature": feature["id"]})
        if st != 200:
            raise Failure(f"the fake Stripe refused to attach the feature: {attached}")
        self.ids = {"price_pack": by_name["Starter pack"]["default_price"],
                    "price_plan": by_name["Pro plan"]["default_price"]}

        self.cli("migrate")
        self.cli("sync", ok=(0, 1))  # 1: the demo catalog's invalid product, on purpose
        log = open(os.path.join(self.tmp, f"serve-{self.label}.log"), "w")
        self.serve_log = log.name
        self.procs.append(subprocess.Popen([os.path.join(self.bin, "stripe-manager"), "serve"],
                                           env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp))
        for _ in range(150):
            try:
                if call("GET", self.base + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise Failure(f"`stripe-manager serve` did not answer /healthz on {self.label}")
        st, _ = call("POST", self.fake + "/_fake/webhooks",
                     {"url": self.base + "/webhooks/stripe", "secret": "whsec_guide"})
        if st != 200:
            raise Failure("the fake Stripe refused the webhook endpoint")

    def token(self, name, scopes):
        return self.cli("token", "create", name, "--scope", ",".join(scopes)).strip()

    def stripe(self, method, path, params=None):
        if method == "GET":
            return call("GET", self.fake + path + "?" + urllib.parse.urlencode(params or {}),
                        headers={"Authorization": "Bearer sk_test_guide"})
        return call(method, self.fake + path, params or {}, {"Authorization": "Bearer sk_test_guide"}, form=True)

    def api(self, token, method, path, body=None):
        return call(method, self.base + path, body, {"Authorization": f"Bearer {token}"})

    def stop(self):
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.receiver:
            self.receiver.shutdown()
            self.receiver.server_close()


# ---------------------------------------------------------------- the walk


def route_scopes():
    with open(os.path.join(ROOT, "openapi", "v1.json"), encoding="utf-8") as f:
        spec = json.load(f)
    routes = []
    for template, ops in spec["paths"].items():
        pattern = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template))
        for method, op in ops.items():
            scopes = [s for sec in op.get("security") or [] for s in sec.get("token", [])]
            if scopes:
                routes.append((method.upper(), re.compile(pattern + "$"), scopes[0]))
    return routes


def fill(value, key, n):
    """A JSON value `"…"` the reader fills in."""
    if key.endswith("_url"):
        return f"https://example.com/{key.removesuffix('_url')}"
    raise Failure(f"docs/USER_GUIDE.md:{n}: no value known for the elided {key!r}")


def walk(backend, cmds, scopes_of_app, routes):
    """Runs every command; -> the number run."""
    b = backend
    setup = b.token("guide-setup", ["all"])
    tokens = {
        "app": (b.token("guide-app", scopes_of_app), scopes_of_app),
        "GATE_TOKEN": (b.token("guide-gate", ["entitlements:read"]), ["entitlements:read"]),
        "GRANT_TOKEN": (b.token("guide-grant", ["credits:grant"]), ["credits:grant"]),
        "billing": (b.token("guide-billing", ["billing:write"]), ["billing:write"]),
    }

    # user_42 buys the Pro plan (with the feature): credits, a customer, a subscription.
    st, session = b.api(setup, "POST", "/api/v1/checkout",
                        {"account": ACCOUNT, "price": b.ids["price_plan"],
                         "success_url": "https://example.com/ok", "cancel_url": "https://example.com/no"})
    if st != 200:
        raise Failure(f"setup: the plan's checkout answered {st}: {session}")
    st, done = call("POST", f"{b.fake}/_fake/checkout/sessions/{session['id']}/complete", {"paid": True})
    if st != 200:
        raise Failure(f"setup: the fake did not complete the checkout: {done}")
    deadline = time.time() + 15
    while True:
        _, credits = b.api(setup, "GET", f"/api/v1/accounts/{ACCOUNT}/credits")
        _, gate = b.api(setup, "GET", f"/api/v1/accounts/{ACCOUNT}/entitlements/advanced_export")
        if isinstance(credits, dict) and credits.get("available") not in (None, "0.00") \
                and isinstance(gate, dict) and gate.get("entitled"):
            break
        if time.time() > deadline:
            raise Failure(f"setup: after the plan's purchase {ACCOUNT} has {credits} and the gate says {gate}")
        time.sleep(0.1)

    last_hold, hold_request, finished_holds, ran = None, None, set(), 0
    for cmd in cmds:
        n = cmd["line"]
        method, url, headers, data = parse_curl(cmd)
        want_status, want_body = documented(cmd)
        # The URL.
        if not url.startswith(ELLIPSIS + "/"):
            raise Failure(f"docs/USER_GUIDE.md:{n}: the URL {url} does not start with …/")
        path = url[1:]
        if path.startswith("/credits/"):
            path = f"/api/v1/accounts/{ACCOUNT}" + path
        elif not path.startswith("/api/v1/"):
            raise Failure(f"docs/USER_GUIDE.md:{n}: cannot tell where {url} goes")
        note = ""
        if "hold_" + ELLIPSIS in path:
            if last_hold is None:
                raise Failure(f"docs/USER_GUIDE.md:{n}: {url} names a hold, and no hold was created before")
            if last_hold in finished_holds:
                # The capture and the release are alternatives: each gets its own hold.
                st, hold = b.api(tokens["app"][0], "POST", f"/api/v1/accounts/{ACCOUNT}/credits/holds",
                                 dict(hold_request, idempotency_key=f"{hold_request.get('idempotency_key', 'hold')}-again"))
                if st not in (200, 201):
                    raise Failure(f"docs/USER_GUIDE.md:{n}: a second hold for this call answered {st}: {hold}")
                last_hold = hold["id"]
                note = " (on a hold of its own: capture and release are alternatives)"
            path = path.replace("hold_" + ELLIPSIS, last_hold)
            finished_holds.add(last_hold)
        if ELLIPSIS in path:
            raise Failure(f"docs/USER_GUIDE.md:{n}: cannot resolve the … in {url}")
        # The body.
        body = None
        if data is not None:
            try:
                body = json.loads(data)
            except json.JSONDecodeError as e:
                raise Failure(f"docs/USER_GUIDE.md:{n}: the -d body is not JSON ({e}): {data}")
            if isinstance(body, dict):
                for k, v in list(body.items()):
                    if v == ELLIPSIS:
                        body[k] = fill(v, k, n)
                    elif isinstance(v, str) and v in b.ids:
                        body[k] = b.ids[v]
            if re.fullmatch(r"/api/v1/accounts/[^/]+/credits/holds", path) and method == "POST":
                hold_request = body
        # The token.
        scope = next((s for m, p, s in routes if m == method and p.match(path.split("?")[0])), None)
        if scope is None:
            raise Failure(f"docs/USER_GUIDE.md:{n}: {method} {path} is not a route of openapi/v1.json")
        token, named = None, None
        sent = {"Content-Type": "application/x-www-form-urlencoded"} if data is not None else {}
        for h in headers:
            k, _, v = h.partition(":")
            m = re.fullmatch(r"Bearer \$([A-Z_]+)", v.strip())
            if k.strip().lower() == "authorization" and m:
                named = m.group(1)
                if named not in tokens:
                    raise Failure(f"docs/USER_GUIDE.md:{n}: the chapter names no token ${named}")
                token = tokens[named][0]
            else:
                sent[k.strip()] = v.strip()
        if token is None:
            token = next((t for t, s in tokens.values() if scope in s), None)
            if token is None:
                raise Failure(f"docs/USER_GUIDE.md:{n}: no token of the chapter holds {scope}, which {method} {path} needs")
        sent["Authorization"] = f"Bearer {token}"
        # As curl sends it: -d's text as given, form-encoded unless a header says otherwise.
        raw = json.dumps(body) if body is not None else None
        req = urllib.request.Request(b.base + path, data=raw.encode() if raw else None, method=method, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                status, answer = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, answer = e.code, e.read()
        try:
            answer = json.loads(answer) if answer else None
        except json.JSONDecodeError:
            answer = answer.decode(errors="replace")
        shown = f"{method} {path}"
        if want_status is not None and status != want_status:
            raise Failure(f"docs/USER_GUIDE.md:{n}: {shown} answered {status}, the doc says {want_status}: {answer}")
        if not 200 <= status < 300:
            raise Failure(f"docs/USER_GUIDE.md:{n}: {shown} answered {status}: {answer}")
        if want_body is not None:
            why = mismatch(want_body, answer, b.ids)
            if why:
                raise Failure(f"docs/USER_GUIDE.md:{n}: {shown}: the answer differs from the doc's: {why}\n  got: {json.dumps(answer)}")
        if isinstance(answer, dict) and str(answer.get("id", "")).startswith("hold_"):
            last_hold = answer["id"]
        if path == "/api/v1/checkout" and body.get("save_payment_method"):
            check_saved_card(b, n)
        print(f"  ok  docs/USER_GUIDE.md:{n}  {status} {shown}{note}", flush=True)
        ran += 1
    return ran


def check_saved_card(b, n):
    """The chapter: the checkout asks Stripe for `setup_future_usage=off_session`."""
    _, log = call("GET", b.fake + "/_fake/requests")
    sessions = [r for r in log if r["method"] == "POST" and r["path"] == "/v1/checkout/sessions"]
    form = urllib.parse.parse_qs(sessions[-1]["body"]) if sessions else {}
    if form.get("payment_intent_data[setup_future_usage]") != ["off_session"]:
        raise Failure(f"docs/USER_GUIDE.md:{n}: the checkout with save_payment_method did not ask Stripe for "
                      f"payment_intent_data[setup_future_usage]=off_session: {form}")


def check_events(b, table, wanted):
    """The events the walk caused: signed, shaped as the chapter's table says."""
    deadline = time.time() + 10
    while True:
        with b.receiver.lock:
            events = list(b.receiver.events)
        seen = set()
        for headers, raw in events:
            try:
                event = json.loads(raw)
                seen.add(event["type"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise Failure(f"an event to the app is not {{\"type\",…}} JSON: {raw[:300]!r}")
        if wanted <= seen or time.time() > deadline:
            break
        time.sleep(0.2)
    if not wanted <= seen:
        raise Failure(f"the events to the app: expected {sorted(wanted)}, received {sorted(seen)}")
    for headers, raw in events:
        event = json.loads(raw)
        if not verify_event(b.app_secret, headers, raw):
            raise Failure(f"an event to the app ({event['type']}) fails its Standard Webhooks signature")
        if sorted(event) != ["data", "timestamp", "type"]:
            raise Failure(f"an event's body is {sorted(event)}, the chapter says {{\"type\",\"timestamp\",\"data\"}}")
        if event["type"] not in table:
            raise Failure(f"the event type {event['type']} is not in the chapter's table")
        line, keys = table[event["type"]]
        missing = [k for k in keys if k not in event["data"]]
        if missing:
            raise Failure(f"docs/USER_GUIDE.md:{line}: a {event['type']} event's data lacks {missing}: {json.dumps(event['data'])}")
    return seen


# ---------------------------------------------------------------- main


def main():
    bin_dir = sys.argv[1]
    chapter, blocks = read_chapter()
    cmds = commands(blocks)
    if len(blocks) < 3 or len(cmds) < 5:
        raise Failure(f"the chapter's sh blocks were not found in docs/USER_GUIDE.md ({len(blocks)} blocks, {len(cmds)} curl commands)")
    scopes = app_scopes(chapter)
    table = event_table(chapter)
    routes = route_scopes()

    backends = []
    tmp = tempfile.mkdtemp(prefix="sm-check-guide.")
    pg_url, pg_db = os.environ.get("SM_TEST_POSTGRES_URL"), None
    try:
        backends.append(("SQLite", f"sqlite://{tmp}/guide.db"))
        skipped = None
        if os.environ.get("SM_SKIP_POSTGRES") == "1":
            skipped = "SKIPPED, SM_SKIP_POSTGRES=1"
        elif pg_url:
            if not shutil.which("psql"):
                raise Failure("SM_TEST_POSTGRES_URL is set, and psql (to make a fresh database) is missing "
                              "(SM_SKIP_POSTGRES=1 runs SQLite only)")
            pg_db = f"sm_guide_{os.getpid()}"
            p = subprocess.run(["psql", "-q", pg_url, "-c", f"CREATE DATABASE {pg_db}"], capture_output=True, text=True)
            if p.returncode != 0:
                pg_db = None
                raise Failure(f"no fresh PostgreSQL database at {pg_url} (SM_SKIP_POSTGRES=1 runs SQLite only): "
                              f"{p.stderr.strip()}")
            backends.append(("PostgreSQL", pg_url.rsplit("/", 1)[0] + "/" + pg_db))
        else:
            skipped = "SKIPPED, SM_TEST_POSTGRES_URL is not set"
        if skipped:
            print(f"!!! {NAME}: the examples run on SQLite only, PostgreSQL {skipped}", file=sys.stderr, flush=True)

        counts = []
        for label, db in backends:
            started = time.time()
            say(f"on {label}")
            b = Backend(bin_dir, db, label, tmp)
            try:
                b.start()
                ran = walk(b, cmds, scopes, routes)
                seen = check_events(b, table, {"credits.granted", "subscription.updated", "entitlements.updated"})
                say(f"{ran} examples on {label} in {time.time() - started:.1f} s; events to the app checked against the table: {', '.join(sorted(seen))}")
                counts.append(ran)
            except Failure:
                log = getattr(b, "serve_log", None)
                if log and os.path.exists(log):
                    tail = open(log).read().strip().split("\n")[-20:]
                    if any(tail):
                        print(f"{NAME}: the service said ({label}):\n" + "\n".join(tail), file=sys.stderr)
                raise
            finally:
                b.stop()
        if len(backends) == 2:
            say(f"{counts[0]} examples of the integration chapter ran, SQLite and PostgreSQL")
        else:
            say(f"{counts[0]} examples of the integration chapter ran, SQLite only (PostgreSQL: {skipped})")
    finally:
        if pg_db:
            subprocess.run(["psql", "-q", pg_url, "-c", f"DROP DATABASE IF EXISTS {pg_db}"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the servers are stopped
    try:
        main()
    except Failure as e:
        print(f"{NAME}: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
