"""A $10.00 card top-up in a real browser, against `gammainfra serve --demo`.

The customer asks the gateway for a checkout (their API key), opens the page the
simulated Stripe serves in headless Chromium, sees the credit and the fee before paying,
presses Pay and lands on the gateway's "Payment received" page. The account is then
credited $10.00 exactly once, even when Stripe delivers the event a second time.
Run by tests/browser/run.sh, which starts the demo and installs Chromium and Selenium.
"""

import datetime
import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

banner = open(os.environ["GAMMAINFRA_DEMO_BANNER"], encoding="utf-8").read()
GW = re.search(r"gateway on (http://[0-9.:]+)", banner).group(1)
KEY = re.search(r"API key: (\S+)", banner).group(1)
ADMIN = re.search(r"Admin token \(for /admin/v1\): (\S+)", banner).group(1)
SHOTS = os.environ.get("GAMMAINFRA_SCREENSHOTS", "target/browser-screenshots")


def call(method, url, token=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=20) as r:
        text = r.read().decode()
        return json.loads(text) if text.startswith(("{", "[")) else text


def check(cond, what):
    if not cond:
        print(f"browser: FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"browser: ok: {what}")


def wait_for(what, fn, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            print(f"browser: ok: {what}")
            return v
        time.sleep(0.1)
    check(False, what)


# The fee in force today: 3% through 2026-06-23 (UTC), 5% from 2026-06-24.
today = datetime.datetime.now(datetime.timezone.utc).date()
charged = "10.30" if today <= datetime.date(2026, 6, 23) else "10.50"

before = call("GET", f"{GW}/v1/credits", KEY)
check(before["balance_usd"] == "3.00", "the demo account starts with the $3.00 trial")
checkout = call("POST", f"{GW}/v1/credits/checkout", KEY, {"amount_usd": "10.00"})
check(
    checkout["credit_usd"] == "10.00" and checkout["total_usd"] == charged,
    f"the checkout credits $10.00 and charges ${charged}",
)

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,800"):
    options.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
try:
    driver.get(checkout["url"])
    driver.save_screenshot(os.path.join(SHOTS, "01-stripe-checkout.png"))
    page = driver.find_element(By.TAG_NAME, "body").text
    check(f"${charged}" in page, f"the payment page shows the total ${charged}")
    check("$10.00" in page and "Top-up fee" in page, "the payment page shows the credit and the fee")
    driver.find_element(By.ID, "pay").click()
    WebDriverWait(driver, 20).until(ec.url_contains("/payments/done"))
    driver.save_screenshot(os.path.join(SHOTS, "02-payment-received.png"))
    check(
        "Payment received" in driver.find_element(By.TAG_NAME, "h1").text,
        "Stripe sends the customer back to the gateway's 'Payment received' page",
    )
    check(
        checkout["id"] in driver.current_url,
        "the return page names the checkout session",
    )
finally:
    driver.quit()

wait_for(
    "the account is credited $10.00",
    lambda: call("GET", f"{GW}/v1/credits", KEY)["topups_usd"] == "10.00",
)

# Stripe delivers the same event again (as its retries do): nothing more is credited.
stripe = "{0.scheme}://{0.netloc}".format(urllib.parse.urlparse(checkout["url"]))
events = call("GET", f"{stripe}/_sim/events")["data"]
completed = [e["id"] for e in events if e["type"] == "checkout.session.completed"]
check(len(completed) == 1, "Stripe emitted one checkout.session.completed")
call("POST", f"{stripe}/_sim/events/{completed[0]}/redeliver")


def delivered_twice():
    log = call("GET", f"{stripe}/_sim/deliveries")["data"]
    ok = [d for d in log if d["event"] == completed[0] and 200 <= (d["status"] or 0) < 300]
    return len(ok) >= 2


wait_for("the event was delivered twice", delivered_twice)
time.sleep(0.5)
after = call("GET", f"{GW}/v1/credits", KEY)
check(
    after["topups_usd"] == "10.00" and after["balance_usd"] == "13.00",
    "credited exactly once: $13.00 after the second delivery",
)
view = call("GET", f"{GW}/admin/v1/accounts/{after['account_id']}", ADMIN)
check(view["ledger_sum_usd"] == view["balance_usd"], "the ledger adds up to the balance")
print(f"browser: screenshots in {SHOTS}")
