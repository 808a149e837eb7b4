#!/usr/bin/env python3
"""Writes the committed seed corpora (fuzz/seeds/TARGET/NAME) from inputs the test
suites use: the webhook tests' events and signatures, the checkout form, the amounts,
metadata and configuration values of the unit tests. Run it again after editing; the
working corpora (fuzz/corpus/TARGET) start from these and are not committed."""

import hashlib
import hmac
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
RS, US = "\x1e", "\x1f"


def write(target, name, data):
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    with open(os.path.join(HERE, target, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def event(id_, kind, obj, created=1700000000):
    return json.dumps({"id": id_, "object": "event", "type": kind, "created": created,
                       "livemode": False, "api_version": "2025-03-31.basil",
                       "pending_webhooks": 1, "data": {"object": obj}}, separators=(",", ":"))


PRODUCT = {"id": "prod_1", "object": "product", "active": True, "name": "Pack",
           "description": None, "metadata": {"credit_amount": "10"}, "default_price": None,
           "created": 1, "updated": 1700000000, "livemode": False}
EVENTS = {
    "product_updated": event("evt_1", "product.updated", PRODUCT),
    "refund_created": event("evt_re", "refund.created", {"id": "re_1", "object": "refund",
                                                          "amount": 500, "currency": "usd", "charge": "ch_1"}),
    "unknown_type": event("evt_u1", "radar.early_fraud_warning.created", {"id": "issfr_1"}),
    "not_an_event": '{"id":"cus_1","object":"event","type":"x","created":1,"data":{"object":{}}}',
    "no_data": '{"id":"evt_1","object":"event","type":"x","created":1}',
    "array": "[1,2]",
}

# The Python-computed signature of the webhook unit test (secret whsec_test_secret).
BODY = ('{"id":"evt_1","object":"event","type":"product.updated","created":1700000000,'
        '"livemode":false,"data":{"object":{"id":"prod_1"}}}')
PY_SIG = "ce07d08865f56b77979d9d15b0b229e7c02a7df954887c6627b0da555a3ca627"
FUZZ_SECRET = "whsec_fuzzNewSecret4567"
sig = hmac.new(FUZZ_SECRET.encode(), b"1700000000." + BODY.encode(), hashlib.sha256).hexdigest()
write("signature", "unit_test_header", f"t=1700000000,v1={PY_SIG}\n{BODY}")
write("signature", "valid_for_fuzz_secret", f"t=1700000000,v1={sig}\n{BODY}")
write("signature", "rotation", f"t=1700000000,v1={'a' * 64},v1={sig},v0={'b' * 64}\n{BODY}")
write("signature", "malformed", f"t=1,t=2,v1={PY_SIG}\nnot json")
write("signature", "no_v1", "t=1700000000,v0=abc\n[1,2]")
write("signature", "refund", f" t=1699999800 , v1={'0' * 64}\n{EVENTS['refund_created']}")

for name, body in EVENTS.items():
    write("envelope", name, body)

write("form", "checkout", RS.join([
    f"mode{US}payment", f"line_items[0][price]{US}price_1", f"line_items[0][quantity]{US}2",
    f"customer{US}cus_1", f"client_reference_id{US}acme", f"success_url{US}https://x.test/ok?a=1&b=2",
    f"metadata{US}account{US}acme{US}product{US}prod_1",
    f"subscription_data[metadata]{US}account{US}acme",
]))
write("form", "awkward", RS.join([f"q{US}a b&c=d+e%20f", "customer", f"expand[]{US}data.price",
                                  f"metadata{US}ключ{US}значение 🙂{US}k{US}",
                                  f"{US}", f"email{US}a+b@x.test"]))
write("form", "sync", RS.join([f"limit{US}100", f"starting_after{US}prod_1", f"active{US}true"]))

for name, amount in {"whole": "12", "half": "1.5", "cents": "0.01", "zero": "0",
                     "max": "9999999999999.99", "too_long": "99999999999999",
                     "decimal": "0.125\nusd", "yen": "500\nJPY", "kwd": "12.345\nkwd",
                     "exponent": "1e3", "negative": "-1"}.items():
    write("amounts", name, amount)


def meta(pairs):
    return RS.join(f"{k}{US}{v}" for k, v in pairs)


write("metadata", "valid", meta([("credit_amount", "10")]))
write("metadata", "max", meta([("credit_amount", "999999999"), ("display_order", "-2"),
                               ("credit_type", "subscription")]))
write("metadata", "invalid", meta([("credit_amount", "10.0"), ("display_order", "first"),
                                   ("credit_type", "monthly")]))
write("metadata", "too_big", meta([("credit_amount", "1234567890"), ("kind", "recurring"),
                                   ("interval", "week"), ("billing_scheme", "tiered")]))
write("metadata", "unicode", meta([("credit_amount", "１"), ("display_order", "0010"),
                                   ("credit_type", "payg")]))

write("config", "defaults", "")
write("config", "full", RS.join([
    "STRIPE_SECRET_KEY=sk_test_51Config~SecretValue", "STRIPE_PUBLIC_KEY=pk_test_abc",
    "STRIPE_WEBHOOK_SECRET=whsec_old, whsec_new~", "STRIPE_ENABLED=true",
    "STRIPE_API_VERSION=2025-03-31.basil", "STRIPE_API_BASE=http://127.0.0.1:12111",
    "STRIPE_CONNECTIVITY_TEST=no", "STRIPE_WEBHOOK_TOLERANCE=300", "STRIPE_MAX_RPS=5",
    "STRIPE_TIMEOUT=30", "STRIPE_MAX_RETRIES=3", "STRIPE_BREAKER_THRESHOLD=10",
    "STRIPE_BREAKER_OPEN_SECS=30", "STRIPE_WEBHOOK_REFETCH=off", "WEBHOOK_MAX_ATTEMPTS=8",
    "WEBHOOK_LEASE_SECS=60", "WEBHOOK_CONCURRENCY=4", "WEBHOOK_ALLOWED_IPS=stripe, 10.0.0.0/8",
    "TRUSTED_PROXIES=127.0.0.1,::1", "DATABASE_URL=postgres://sm:pw~@127.0.0.1:5432/test",
    "BIND=127.0.0.1:8080", "APP_ENV=production", "LOG_FORMAT=json",
    "HTTP_HEADER_TIMEOUT=10", "HTTP_REQUEST_TIMEOUT=30", "HTTP_MAX_CONNECTIONS=1000",
]))
write("config", "every_problem", RS.join([
    "STRIPE_SECRET_KEY=pk_test_51Secret~LookingValue",
    "STRIPE_WEBHOOK_SECRET=whsec_good,whsec_bad val~ue", "STRIPE_MAX_RPS=fast",
    "STRIPE_WEBHOOK_TOLERANCE=0", "STRIPE_API_BASE=ftp://x", "STRIPE_API_VERSION=latest",
    "DATABASE_URL=mysql://root:pw~@x/db", "BIND=8080", "STRIPE_ENABLED=maybe",
    "WEBHOOK_ALLOWED_IPS=10.0.0.0/33", "TRUSTED_PROXIES=,", "APP_ENV=staging",
]))
write("config", "precedence", RS.join([
    ".BIND=127.0.0.1:1", "BIND=127.0.0.1:2", "-BIND=127.0.0.1:3",
    ".STRIPE_SECRET_KEY=sk_live_~abc", "-STRIPE_PUBLIC_KEY=pk_test_abc",
    "DATABASE_URL=sqlite://stripe-manager.db?mode=rwc",
]))
write("config", "live_mismatch", RS.join([
    "STRIPE_SECRET_KEY=rk_live_~x", "STRIPE_PUBLIC_KEY=pk_test_abc", "APP_ENV=dev",
    "DATABASE_URL=sqlite::memory:",
]))

for name, account in {"plain": "acme", "email": "user_42@example.com", "slash": "org:acme/team",
                      "zero_width": "ac\u200bme", "bidi": "\u202eemca", "space": "a b",
                      "long": "a" * 129}.items():
    write("account", name, account)

for name, url in {"fake": "http://user:~pw@127.0.0.1:12111", "query": "https://u:~p@api.stripe.com/?x=1",
                  "ftp": "ftp://root:~secret@x"}.items():
    write("api_base", name, url)
