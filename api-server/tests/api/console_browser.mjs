// Drives the admin console in a real headless Chromium (Debian's, through playwright-core) and prints one JSON
// object of what it saw; api-server/tests/api/console.rs asserts on it. Arguments (JSON on argv[2]):
//   {url, adminKey, sendOnlyKey, number, pdf, screenshots, modules}
// `modules` is the node_modules directory with playwright-core and axe-core (installed by .ci/run).
import { createRequire } from "node:module";
import http from "node:http";
import fs from "node:fs";
import path from "node:path";

const args = JSON.parse(process.argv[2]);
const require = createRequire(path.join(args.modules, "noop.js"));
const { chromium } = require("playwright-core");
const axeSource = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const out = { steps: [], console: [], urls: [], titles: [], dom_leaks: [], axe: {}, screenshots: [] };
const step = (name, data = {}) => out.steps.push({ name, ...data });

const browser = await chromium.launch({
  executablePath: process.env.FAXBOT_TEST_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
  ],
});
const deadline = Date.now() + 120_000;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on("console", (m) => out.console.push(m.text()));
  page.on("pageerror", (e) => out.console.push(`pageerror: ${e.message}`));
  page.on("framenavigated", (f) => { if (f === page.mainFrame()) out.urls.push(f.url()); });
  // What a page shows, for the PHI checks: the whole DOM, its title and its URL.
  const look = async (label) => {
    const html = await page.content();
    const title = await page.title();
    out.titles.push(title);
    if (html.includes(args.number) || title.includes(args.number) || page.url().includes(args.number)) {
      out.dom_leaks.push(label);
    }
  };

  // Not signed in: every page leads to the sign-in form.
  let r = await page.goto(`${args.url}/admin/ui/`);
  step("unsigned", { url: page.url(), status: r.status(), headers: r.headers() });

  // A key without the admin scope is refused, and no session cookie is set.
  await page.fill("#key", args.sendOnlyKey);
  [r] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  step("signin_refused", {
    status: r.status(),
    error: await page.textContent("#signin-error"),
    cookies: (await context.cookies()).length,
  });

  // The admin key: a session cookie, then the dashboard.
  await page.fill("#key", args.adminKey);
  [r] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  const cookies = await context.cookies();
  step("signed_in", { url: page.url(), title: await page.title(), cookies });
  await look("dashboard");

  // Send a fax from the console's own form, then watch its page reach SUCCESS.
  await page.click("a[href='/admin/ui/send']");
  await page.fill("#to", args.number);
  await page.setInputFiles("#file", args.pdf);
  [r] = await Promise.all([page.waitForNavigation(), page.click("form[enctype] button[type=submit]")]);
  const jobUrl = page.url();
  step("sent", { url: jobUrl, status: r.status() });
  let status = "";
  while (Date.now() < deadline) {
    status = (await page.textContent("#job-status").catch(() => "")) || "";
    if (["SUCCESS", "FAILED", "failed"].includes(status.trim())) break;
    await page.waitForTimeout(500);
  }
  step("job", { status: status.trim(), to: (await page.textContent("#job-to")).trim() });
  await look("job");

  // The list shows it, masked; a filter by status keeps it.
  await page.goto(`${args.url}/admin/ui/jobs?status=SUCCESS`);
  step("jobs", { rows: await page.locator("table.list tbody tr").count() });
  await look("jobs");

  // A post from another origin (a page this script serves on another port) is refused, even with the cookie.
  const evil = http.createServer((_, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(`<!doctype html><title>elsewhere</title><form method="post" action="${jobUrl}/reveal">
      <input type="hidden" name="csrf" value="guessed"><button id="go">go</button></form>`);
  });
  await new Promise((ok) => evil.listen(0, "127.0.0.1", ok));
  const evilPage = await context.newPage();
  await evilPage.goto(`http://127.0.0.1:${evil.address().port}/`);
  [r] = await Promise.all([evilPage.waitForNavigation(), evilPage.click("#go")]);
  const evilHtml = await evilPage.content();
  step("cross_site", { status: r.status(), leaked: evilHtml.includes(args.number) });
  await evilPage.close();
  evil.close();

  // API keys: create one with a scope (its token shown once), then revoke it.
  await page.goto(`${args.url}/admin/ui/keys`);
  await page.fill("#key-name", "console test");
  await page.check("input[name=scopes][value='fax:send']");
  [r] = await Promise.all([page.waitForNavigation(), page.click("#create-key")]);
  const token = await page.inputValue("#issued-token");
  const createdId = token.split("_")[2];
  step("key_created", { status: r.status(), token, key_id: createdId });
  await page.goto(`${args.url}/admin/ui/keys`);
  const tokenAgain = (await page.content()).includes(token);
  [r] = await Promise.all([
    page.waitForNavigation(),
    page.click(`form[action='/admin/ui/keys/${createdId}/revoke'] button`),
  ]);
  step("key_revoked", {
    status: r.status(),
    state: (await page.textContent(`#key-${createdId} td:nth-child(7)`)).trim(),
    token_shown_again: tokenAgain,
  });

  // A plugin setting: a value the schema refuses (its message beside the field), then a good one.
  await page.goto(`${args.url}/admin/ui/providers`);
  await page.fill("#outbound-deliveryLatencyMs", "9999999");
  // The browser's own range check would stop the form first; the server's answer is what is tested.
  await page.evaluate(() => document.querySelector("#outbound-deliveryLatencyMs").removeAttribute("max"));
  [r] = await Promise.all([page.waitForNavigation(), page.click("#save-outbound")]);
  step("setting_refused", {
    status: r.status(),
    error: (await page.textContent("#outbound-deliveryLatencyMs-error").catch(() => "")).trim(),
    kept: await page.inputValue("#outbound-deliveryLatencyMs"),
  });
  await page.fill("#outbound-deliveryLatencyMs", "300");
  [r] = await Promise.all([page.waitForNavigation(), page.click("#save-outbound")]);
  step("setting_saved", {
    status: r.status(),
    url: page.url(),
    notice: (await page.textContent("#saved").catch(() => "")).trim(),
    value: await page.inputValue("#outbound-deliveryLatencyMs"),
  });
  await look("providers");

  // A received fax: listed masked, its document downloaded through a one-time link, which then refuses.
  await page.goto(`${args.url}/admin/ui/inbound`);
  await look("inbound");
  await page.click("#inbound tbody tr:first-child a");
  const inboundUrl = page.url();
  await look("inbound_fax");
  const from = (await page.textContent("#fax-from")).trim();
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
  const saved = path.join(args.screenshots, "inbound-download.pdf");
  await download.saveAs(saved);
  const bytes = fs.readFileSync(saved);
  fs.unlinkSync(saved);
  const again = await context.request.get(download.url());
  step("inbound", {
    from,
    downloaded: bytes.length,
    pdf: bytes.subarray(0, 5).toString() === "%PDF-",
    link_has_number: download.url().includes(args.number),
    reuse_status: again.status(),
  });

  // Screenshots and the accessibility check of every page, at desktop and narrow widths, before the reveal.
  const pages = [
    ["dashboard", "/admin/ui/"],
    ["jobs", "/admin/ui/jobs"],
    ["job", new URL(jobUrl).pathname],
    ["send", "/admin/ui/send"],
    ["inbound", "/admin/ui/inbound"],
    ["inbound-fax", new URL(inboundUrl).pathname],
    ["keys", "/admin/ui/keys"],
    ["providers", "/admin/ui/providers"],
    ["events", "/admin/ui/events"],
    ["audit", "/admin/ui/audit"],
  ];
  // axe is injected into a context that ignores the CSP (the console's own CSP rightly refuses injected
  // script); it shares the signed-in cookie.
  const axeContext = await browser.newContext({ bypassCSP: true, storageState: await context.storageState() });
  const axePage = await axeContext.newPage();
  for (const [name, pathname] of pages) {
    for (const [width, height, label] of [[1280, 800, "desktop"], [390, 844, "narrow"]]) {
      await axePage.setViewportSize({ width, height });
      await axePage.goto(`${args.url}${pathname}`);
      if (args.screenshots) {
        const file = path.join(args.screenshots, `${name}-${label}.png`);
        await axePage.screenshot({ path: file, fullPage: true });
        out.screenshots.push(file);
      }
    }
    await axePage.addScriptTag({ content: axeSource });
    const result = await axePage.evaluate(async () => await window.axe.run(document));
    out.axe[name] = result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
  }
  // The sign-in page, signed out (a fresh context).
  const anon = await browser.newContext({ bypassCSP: true });
  const anonPage = await anon.newPage();
  for (const [width, height, label] of [[1280, 800, "desktop"], [390, 844, "narrow"]]) {
    await anonPage.setViewportSize({ width, height });
    await anonPage.goto(`${args.url}/admin/ui/signin`);
    if (args.screenshots) {
      const file = path.join(args.screenshots, `signin-${label}.png`);
      await anonPage.screenshot({ path: file, fullPage: true });
      out.screenshots.push(file);
    }
  }
  await anonPage.addScriptTag({ content: axeSource });
  out.axe.signin = (await anonPage.evaluate(async () => await window.axe.run(document))).violations
    .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
  await axeContext.close();
  await anon.close();

  // Reveal the number: an explicit action, shown once, on a page whose URL and title do not carry it.
  await page.goto(jobUrl);
  [r] = await Promise.all([page.waitForNavigation(), page.click("#reveal")]);
  step("revealed", {
    status: r.status(),
    to: (await page.textContent("#job-to")).trim(),
    url: page.url(),
    title: await page.title(),
  });

  // The audit trail shows the reveal, with the key id.
  await page.goto(`${args.url}/admin/ui/audit?event=console_number_revealed`);
  step("audit", { rows: await page.locator("#audit tbody tr").count(), text: await page.textContent("#audit") });
  await look("audit");

  // Sign out: the cookie is cleared and the session is over.
  await page.goto(`${args.url}/admin/ui/`);
  [r] = await Promise.all([page.waitForNavigation(), page.click(".signout button")]);
  step("signed_out", { url: page.url(), cookies: (await context.cookies()).length });
  r = await page.goto(`${args.url}/admin/ui/jobs`);
  step("after_signout", { url: page.url() });
} catch (e) {
  // What the browser showed when a step failed, for the test's message.
  for (const context of browser.contexts()) {
    for (const p of context.pages()) console.error(`--- ${p.url()}\n${(await p.content()).slice(0, 4000)}`);
  }
  console.error(JSON.stringify(out));
  throw e;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
