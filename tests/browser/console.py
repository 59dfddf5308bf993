"""The customers' web console in a real browser, against `gammainfra serve --demo`.

A new customer signs up at /console/signup, opens the verification link the gateway
wrote to its outbox (the $3.00 trial is granted), logs in and sees the balance, creates
an API key and sends a chat request with it, finds the request on the usage page (chart,
legend, table) and its cost in the overview, tops up $10.00 by card (the fee previewed
as the amount is typed, reviewed, paid on the simulated Stripe's page, credited once
even when Stripe delivers the event twice), finds the receipt, revokes the key (requests
with it are refused with 401) and logs out. Every page is screenshotted.
Run by tests/browser/run.sh after topup.py, against the same demo gateway.
"""

import datetime
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

banner = open(os.environ["GAMMAINFRA_DEMO_BANNER"], encoding="utf-8").read()
GW = re.search(r"gateway on (http://[0-9.:]+)", banner).group(1)
ADMIN = re.search(r"Admin token \(for /admin/v1\): (\S+)", banner).group(1)
SHOTS = os.environ.get("GAMMAINFRA_SCREENSHOTS", "target/browser-screenshots")
MODEL = "anthropic/claude-sonnet-4-6"

driver = None


def request(method, url, token=None, body=None):
    """(HTTP status, the JSON or text answered), error statuses included."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    return status, json.loads(text) if text.startswith(("{", "[")) else text


def call(method, url, token=None, body=None):
    status, answer = request(method, url, token, body)
    require(200 <= status < 300, f"{method} {url} answers {status}: {answer}")
    return answer


def check(cond, what):
    require(cond, what)
    print(f"browser: ok: {what}")


def require(cond, what):
    """Fails the test with `what` unless `cond` (and prints nothing when it holds)."""
    if not cond:
        print(f"browser: FAILED: {what}", file=sys.stderr)
        if driver is not None:
            try:
                print(f"browser: the page is {driver.current_url}", file=sys.stderr)
                body = driver.find_element(By.TAG_NAME, "body").text
                print("browser: it says: " + body[:1500].replace("\n", " | "), file=sys.stderr)
                driver.save_screenshot(os.path.join(SHOTS, "99-failure.png"))
            except Exception as e:  # the report of a failure must not hide it
                print(f"browser: (the page could not be read: {e})", file=sys.stderr)
        sys.exit(1)


def wait_for(what, fn, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            print(f"browser: ok: {what}")
            return v
        time.sleep(0.1)
    check(False, what)


def until(condition, what, timeout=20):
    """A WebDriverWait whose timeout fails the test with `what`."""
    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException:
        check(False, what)


def element(id_, timeout=20):
    return until(ec.presence_of_element_located((By.ID, id_)), f"the page has #{id_}", timeout)


def text(id_):
    return element(id_).text.strip()


def heading():
    return driver.find_element(By.TAG_NAME, "h1").text.strip()


def path():
    """The path of the page the browser shows."""
    return urllib.parse.urlparse(driver.current_url).path


def shot(name):
    """A screenshot of the whole page (the window is made as tall as the page)."""
    height, chrome = driver.execute_script(
        "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]"
    )
    driver.set_window_size(1000, max(800, min(int(height) + int(chrome), 4000)))
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))
    driver.set_window_size(1000, 800)


def open_page(path, id_):
    """Opens GW + path and waits for the element #id_ of the page expected."""
    driver.get(GW + path)
    return element(id_)


def submit(button_id, then_id, timeout=20):
    """Presses the button, waits for the next page to replace this one and for #then_id."""
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.ID, button_id).click()
    until(ec.staleness_of(old), f"pressing #{button_id} leads to another page", timeout)
    return element(then_id, timeout)


def usd(s):
    """The amount of a console figure such as `$0.0000792` or `−$1.20`."""
    m = re.fullmatch(r"(−|-)?\$(\d+(?:\.\d+)?)", s.strip())
    require(m is not None, f"{s!r} is an amount in USD")
    return -Decimal(m.group(2)) if m.group(1) else Decimal(m.group(2))


# The fee in force today: 3% through 2026-06-23 (UTC), 5% from 2026-06-24.
today = datetime.datetime.now(datetime.timezone.utc).date()
fee, charged = ("0.30", "10.30") if today <= datetime.date(2026, 6, 23) else ("0.50", "10.50")

email = f"console-{int(time.time() * 1000)}@example.com"
password = "a long console password"

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,800"):
    options.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
try:
    # 1. Sign up.
    open_page("/console/signup", "signup")
    check(heading() == "Create your account", "the sign-up page asks to create an account")
    main = driver.find_element(By.TAG_NAME, "main").text
    check("$3.00" in main, "the sign-up page offers the $3.00 trial")
    element("email").send_keys(email)
    element("password").send_keys(password)
    shot("10-signup")
    submit("signup", "message")
    shot("11-check-inbox")
    check(heading() == "Check your inbox", "signing up shows 'Check your inbox'")
    check(email in text("message"), "the page names the address the link went to")

    # 2. The verification link, from the outbox.
    def verification_mail():
        mails = call("GET", f"{GW}/admin/v1/outbox?to={urllib.parse.quote(email)}", ADMIN)["data"]
        return [m for m in mails if m["to"] == email and "/console/verify?token=" in m["body"]]

    mails = wait_for("the outbox has the verification email", verification_mail)
    check(len(mails) == 1, "exactly one verification email was sent")
    check(
        mails[0]["subject"] == "Verify your email for GammaInfra",
        "its subject asks to verify the email",
    )
    link = re.search(r"(\S+/console/verify\?token=[0-9a-f]+)", mails[0]["body"]).group(1)
    check(link.startswith(GW + "/console/verify?token="), "the link is on the gateway's address")
    driver.get(link)
    element("message")
    shot("12-verified")
    check(heading() == "Email verified", "the link verifies the email")
    check(
        "verified" in text("message") and "$3.00 of trial credit" in text("message"),
        "the page says $3.00 of trial credit was added",
    )

    # 3. Log in: the overview shows the trial.
    open_page("/console/login", "login")
    element("email").send_keys(email)
    element("password").send_keys(password)
    shot("13-login")
    submit("login", "balance")
    check(path() == "/console", "logging in opens the overview")
    shot("14-overview")
    check(text("trial") == "$3.00", "the overview shows $3.00 of trial credit")
    check(text("balance") == "$3.00", "the overview shows a $3.00 balance")
    check(text("topups") == "$0.00" and text("spent") == "$0.00", "nothing topped up or spent yet")
    who = driver.find_element(By.CSS_SELECTOR, "header .who").text
    check(who == email, "the header names the customer")

    # 4. A new key, shown once.
    open_page("/console/keys", "create")
    element("name").send_keys("console test")
    shot("15-keys")
    key = submit("create", "new-key-value").text.strip()
    shot("16-new-key")
    check(key.startswith("gi-") and len(key) > 20, "the new key is shown once")
    key_id = driver.find_element(By.CSS_SELECTOR, "#new-key p code").text.strip()
    check(key_id != "" and key_id != key, "the panel names the key's ID")
    row = element(f"key-{key_id}")
    check("console test" in row.text, "the key's row in the list has its name")
    check(key not in driver.find_element(By.ID, "keys").text, "the list does not show the secret")

    # 5. A chat request with it.
    status, answer = request(
        "POST",
        f"{GW}/v1/chat/completions",
        key,
        {"model": MODEL, "messages": [{"role": "user", "content": "Hello from the console test"}]},
    )
    check(status == 200, f"a chat request with the new key answers 200 (got {status})")
    check(
        isinstance(answer, dict) and len(answer.get("choices") or []) >= 1
        and answer["choices"][0]["message"]["content"],
        "the answer has a choice with a message",
    )
    cost = Decimal(answer["usage"]["cost_usd"])
    check(cost > 0, f"the request cost ${cost}")

    # 6. Usage: the chart, the legend, the recent requests; the overview's spend. The
    # request answered a moment ago is on the page at its first load.
    open_page("/console/usage", "usage-chart")
    check(
        len(driver.find_elements(By.CSS_SELECTOR, "#recent-requests tbody tr")) == 1,
        "the usage page lists the request at once",
    )
    shot("17-usage")
    bars = driver.find_elements(By.CSS_SELECTOR, "#usage-chart > rect")
    check(len(bars) >= 1, f"the chart has a bar ({len(bars)})")
    legend = [li.text.strip() for li in driver.find_elements(By.CSS_SELECTOR, "#usage-legend li")]
    check(MODEL in legend, f"the legend names {MODEL} ({legend})")
    rows = driver.find_elements(By.CSS_SELECTOR, "#recent-requests tbody tr")
    models = [r.find_elements(By.TAG_NAME, "td")[1].text.strip() for r in rows]
    check(models == [MODEL], f"the recent requests list the one request, to {MODEL} ({models})")
    summary = text("usage-summary")
    counted = re.search(r" in (\d+) requests?\.$", summary)
    check(
        counted is not None and counted.group(1) == "1",
        f"the summary counts 1 request ({summary!r})",
    )
    cells = rows[0].find_elements(By.TAG_NAME, "td")
    check(usd(cells[6].text) == cost, f"the request's row shows its cost ${cost}")
    open_page("/console", "spent")
    shot("18-overview-spent")
    spent = usd(text("spent"))
    check(spent != 0, f"the overview's spend is no longer $0.00 ({text('spent')})")
    check(spent == cost, "the overview's spend is the request's cost")
    check(
        usd(text("balance")) == Decimal("3.00") - spent,
        f"the balance {text('balance')} is the trial less the spend",
    )

    # 7. A $10.00 top-up: preview, review, Stripe's page, back to the console.
    open_page("/console/topup", "amount")
    element("amount").send_keys("10")
    preview = until(
        lambda d: d.find_element(By.ID, "fee-preview").text.strip() or False,
        "the fee preview appears as the amount is typed",
    )
    shot("19-topup")
    check(
        preview == f"Fee ${fee}, charged ${charged} in total.",
        f"the preview shows the fee ${fee} and the total ${charged} ({preview!r})",
    )
    submit("review", "review-total")
    shot("20-topup-review")
    check(text("review-credit") == "$10.00", "the review credits $10.00")
    check(text("review-fee") == f"${fee}", f"the review's fee is ${fee} ({text('review-fee')})")
    total = text("review-total")
    check(total == f"${charged}", f"the review charges ${charged} ({total})")
    old = driver.find_element(By.TAG_NAME, "html")
    element("pay").click()
    until(ec.staleness_of(old), "pressing Pay leaves the review page")
    until(ec.url_contains("/pay/"), "the browser goes to Stripe's payment page")
    stripe_url = urllib.parse.urlparse(driver.current_url)
    check(
        stripe_url.hostname == "127.0.0.1" and f"{stripe_url.scheme}://{stripe_url.netloc}" != GW,
        f"the payment page is the simulated Stripe's ({driver.current_url})",
    )
    element("pay")
    shot("21-stripe-checkout")
    page = driver.find_element(By.TAG_NAME, "body").text
    check(f"${charged}" in page, f"the payment page shows the total ${charged}")
    check(
        "$10.00" in page and "Top-up fee" in page,
        "the payment page shows the credit and the fee",
    )
    old = driver.find_element(By.TAG_NAME, "html")
    element("pay").click()
    until(ec.staleness_of(old), "pressing Pay on Stripe's page leaves it")
    until(
        ec.url_contains(f"{GW}/console/topup/done?session_id="),
        "Stripe sends the browser back to the console",
    )
    query = urllib.parse.parse_qs(urllib.parse.urlparse(driver.current_url).query)
    session_id = query["session_id"][0]
    check(session_id.startswith("cs_"), f"the return page names the session ({session_id})")
    first = until(
        lambda d: d.find_elements(By.ID, "credited") or d.find_elements(By.ID, "waiting"),
        "the return page says the credit was added or is on its way",
    )[0]
    shot("22-topup-done")
    print(f"browser: ok: the return page first shows #{first.get_attribute('id')}")
    credited = element("credited", timeout=30)
    check(
        credited.text.strip() == "$10.00 was added to your balance.",
        f"the return page confirms the credit ({credited.text!r})",
    )
    shot("23-topup-credited")

    # 8. Stripe delivers the event again (as its retries do): nothing more is credited.
    stripe = f"{stripe_url.scheme}://{stripe_url.netloc}"
    events = call("GET", f"{stripe}/_sim/events")["data"]
    completed = [
        e["id"]
        for e in events
        if e["type"] == "checkout.session.completed" and e["data"]["object"]["id"] == session_id
    ]
    check(len(completed) == 1, "Stripe emitted one checkout.session.completed for this session")
    call("POST", f"{stripe}/_sim/events/{completed[0]}/redeliver")

    def delivered_twice():
        log = call("GET", f"{stripe}/_sim/deliveries")["data"]
        ok = [d for d in log if d["event"] == completed[0] and 200 <= (d["status"] or 0) < 300]
        return len(ok) >= 2

    wait_for("the event was delivered twice", delivered_twice)
    open_page("/console", "balance")
    shot("24-overview-topped-up")
    check(text("topups") == "$10.00", "the overview shows $10.00 topped up, once")
    spent = usd(text("spent"))
    balance = usd(text("balance"))
    check(
        balance == Decimal("3.00") + Decimal("10.00") - spent,
        f"the balance {text('balance')} is $13.00 less the ${spent} spent",
    )
    credits = call("GET", f"{GW}/v1/credits", key)
    check(Decimal(credits["balance_usd"]) == balance, "the API's balance is the console's")
    open_page("/console/receipts", "receipts")
    shot("25-receipts")
    rows = driver.find_elements(By.CSS_SELECTOR, "#receipts tbody tr")
    check(len(rows) == 1, f"the receipts list one payment ({len(rows)})")
    cells = [td.text.strip() for td in rows[0].find_elements(By.TAG_NAME, "td")]
    check(cells[1] == "$10.00", "the receipt's credit is $10.00")
    check(
        cells[2] == f"${fee}" and cells[3] == f"${charged}",
        f"the receipt's fee is ${fee}, ${charged} charged",
    )
    old = driver.find_element(By.TAG_NAME, "html")
    rows[0].find_element(By.TAG_NAME, "a").click()
    until(ec.staleness_of(old), "the receipt's link opens it")
    receipt = element("receipt").text
    shot("26-receipt")
    check(heading().startswith("Receipt"), "the receipt page opens")
    check(
        all(s in receipt for s in ("$10.00", f"${charged}", session_id, email)),
        "the receipt shows the credit, the total, the session and the account",
    )

    # 9. Revoke the key: requests with it are refused.
    open_page("/console/keys", f"key-{key_id}")
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, f"#key-{key_id} form button[type=submit]").click()
    # The page asks first (console.js): the key cannot be restored.
    dialog = WebDriverWait(driver, 10).until(ec.alert_is_present())
    check(key_id in dialog.text and "cannot be undone" in dialog.text, f"revoking asks first ({dialog.text!r})")
    dialog.accept()
    until(ec.staleness_of(old), "the revoke button posts its form")
    notice = text("notice")
    shot("27-key-revoked")
    check("revoked" in notice, f"the page says the key is revoked ({notice!r})")
    check(
        element(f"key-{key_id}").find_elements(By.TAG_NAME, "td")[-1].text.strip() == "revoked",
        "the key's row says revoked",
    )
    status, _ = request(
        "POST",
        f"{GW}/v1/chat/completions",
        key,
        {"model": MODEL, "messages": [{"role": "user", "content": "Hello again"}]},
    )
    check(status == 401, f"a chat request with the revoked key answers 401 (got {status})")

    # 10. Log out: the console sends to the login page.
    submit("logout", "login")
    shot("28-logged-out")
    check(path() == "/console/login", "logging out opens the login page")
    check("logged out" in text("notice"), f"the login page says so ({text('notice')!r})")
    driver.get(f"{GW}/console")
    element("login")
    check(path() == "/console/login", "after logging out /console redirects to the login page")
    shot("29-console-after-logout")
finally:
    driver.quit()
    driver = None
print(f"browser: console screenshots in {SHOTS}")
