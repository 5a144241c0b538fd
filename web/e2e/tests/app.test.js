// The web app end to end, in headless Chromium, against the real gateway, broadcast service and
// archival worker (see harness.js). Every route the app uses exists: none of these tests skips,
// and a 404 from the gateway fails the test that met it.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { PASSWORD, Stack, waitFor } from "../harness.js";

// The README's screenshots are retaken into docs/screenshots/ only when asked
// (`UPDATE_SCREENSHOTS=1 make test-web`), so an ordinary test run leaves the tree clean.
const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === "1"
  ? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../docs/screenshots")
  : mkdtempSync(path.join(tmpdir(), "auction-screenshots-"));
const DESKTOP = { viewport: { width: 1280, height: 860 } };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
const LOCALE = { locale: "en-US", timezoneId: "America/New_York" };

let stack;
let seller;
let admin;
let alice;
let bob;
let counter = 0;

/** A unique name fragment, so each test finds its own items. */
function unique(label) {
  counter += 1;
  return `${label} ${Date.now().toString(36)}${counter}`;
}

async function newItem(fields = {}) {
  const reply = await stack.createItem(seller, fields);
  assert.equal(reply.status, 201, JSON.stringify(reply.body));
  return reply.body;
}

/** A page signed in as `tokens` (null: signed out), on the suite's stack unless `on` says. */
async function pageAs(tokens, options = {}, on = stack) {
  const context = await on.signedInContext(tokens, { ...DESKTOP, ...LOCALE, ...options });
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error(`page error: ${error.message}`));
  return page;
}

async function openItem(page, id, on = stack) {
  await page.goto(on.appUrl(`#/items/${id}`));
  await page.locator("#live-status[data-state='live']").waitFor();
  await page.locator("#current-price").filter({ hasText: "$" }).waitFor();
}

/** A new item named after `label`, and Alice's page on it where she leads at $10.00. */
async function aliceLeading(label) {
  const item = await newItem({ name: unique(label) });
  const page = await pageAs(alice);
  await openItem(page, item.id);
  await bid(page, "10.00");
  await page.locator("#bid-message").filter({ hasText: "you lead at $10.00" }).waitFor();
  return { item, page };
}

/** `epochMs` as a datetime-local input's value in the page's time zone (what a person types). */
function localInput(page, epochMs) {
  return page.evaluate((ms) => {
    const d = new Date(ms);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
  }, epochMs);
}

async function bid(page, amount, max) {
  await page.getByLabel(/^Your bid/).fill(amount);
  if (max) await page.getByLabel(/^Maximum/).fill(max);
  await page.getByRole("button", { name: "Place bid" }).click();
}

// Limits that a loaded two-core machine stays well inside (a test takes seconds when idle, the
// whole run about two minutes): each test on its own, and the whole suite with the services'
// start, so one stuck test fails alone and a stuck start cannot hang `make test`.
const PER_TEST = { timeout: 120_000 };
const WHOLE_SUITE = { timeout: 900_000 };

describe("the web app", WHOLE_SUITE, () => {
  before(async () => {
    stack = await Stack.start();
    const suffix = Date.now().toString(36);
    seller = await stack.register(`seller-${suffix}`);
    alice = await stack.register(`alice-${suffix}`);
    bob = await stack.register(`bob-${suffix}`);
    admin = await stack.admin(`admin-${suffix}`);
  });

  after(async () => {
    await stack?.stop();
  });

  test("is served by the gateway with its config, and / leads to it", PER_TEST, async () => {
    const config = await stack.api("/app/config.json");
    assert.equal(config.status, 200);
    assert.equal(config.body.ws_url, `ws://${new URL(stack.broadcastUrl).host}/ws`);
    assert.equal(config.body.currency, "USD");
    const page = await pageAs(null);
    await page.goto(stack.gatewayUrl);
    assert.match(page.url(), /\/app\/$/);
    await page.getByRole("heading", { name: "Auctions" }).waitFor();
    await page.context().close();
  });

  test("screenshots of the list and the item page at desktop and phone widths", PER_TEST, async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    const featured = await newItem({
      name: "Leica M3 rangefinder, 1957",
      description: "Serviced in 2025. Shutter accurate at all speeds; light brassing on the top plate.",
      starting_price: 450,
      min_increment: 10,
      reserve_price: 600,
      extension_window_secs: 60,
      extension_secs: 60,
      minutes: 47,
    });
    for (const [name, minutes] of [["Eames lounge chair (replica)", 180], ["Mechanical keyboard, 65%", 12], ["Signed first edition: Dune", 600]]) {
      await newItem({ name, starting_price: 25, minutes });
    }
    for (const [who, amount] of [[alice, 450], [bob, 470], [alice, 500]]) {
      await stack.api(`/api/v1/items/${featured.id}/bid`, { method: "POST", token: who.access_token, json: { amount } });
    }
    for (const [label, options] of [["desktop", DESKTOP], ["phone", PHONE]]) {
      const page = await pageAs(bob, options);
      await page.goto(stack.appUrl("#/"));
      await page.locator(".card").first().waitFor();
      await page.locator("#live-status[data-state='live']").waitFor();
      const width = options.viewport.width;
      assert.ok(await page.evaluate((w) => document.documentElement.scrollWidth <= w, width), `the list fits ${width} px`);
      const list = path.join(SCREENSHOTS, `list-${label}.png`);
      await page.screenshot({ path: list, fullPage: label === "phone" ? false : true });
      await openItem(page, featured.id);
      await waitFor("the history", async () => (await page.locator("#history li").count()) === 3);
      await page.locator("#viewers").filter({ hasText: /\d/ }).waitFor();
      assert.ok(await page.evaluate((w) => document.documentElement.scrollWidth <= w, width), `the item page fits ${width} px`);
      const itemShot = path.join(SCREENSHOTS, `item-${label}.png`);
      await page.screenshot({ path: itemShot, fullPage: true });
      for (const file of [list, itemShot]) assert.ok(statSync(file).size > 10_000, `${file} has content`);
      await page.context().close();
    }
  });

  test("every control is labelled and a bid can be placed by keyboard alone", PER_TEST, async () => {
    const item = await newItem({ name: unique("Globe") });
    const page = await pageAs(alice);
    const unlabelled = () => page.evaluate(() =>
      [...document.querySelectorAll("main input, main select, main textarea, main button")]
        .filter((c) => !c.hidden && c.offsetParent !== null)
        .filter((c) => !(c.labels?.length || c.getAttribute("aria-label") || (c.tagName === "BUTTON" && c.textContent.trim())))
        .map((c) => c.outerHTML));
    for (const hash of ["#/", "#/sell", `#/items/${item.id}`]) {
      await page.goto(stack.appUrl(hash));
      await page.locator("main h1").filter({ hasNotText: "Loading" }).waitFor();
      await page.locator("main input, main button").first().waitFor();
      assert.deepEqual(await unlabelled(), [], `${hash}: every control has a label`);
    }
    await openItem(page, item.id);
    await page.locator("#bid-amount").waitFor();
    // From the top of the page, Tab through to the bid field, type, Enter submits.
    await page.locator("body").click({ position: { x: 1, y: 1 } });
    for (let i = 0; i < 40; i += 1) {
      await page.keyboard.press("Tab");
      if (await page.evaluate(() => document.activeElement?.id === "bid-amount")) break;
    }
    assert.equal(await page.evaluate(() => document.activeElement?.id), "bid-amount", "the bid field is reachable by Tab");
    await page.keyboard.type("10.00");
    await page.keyboard.press("Enter");
    await page.locator("#bid-message").filter({ hasText: "you lead at $10.00" }).waitFor();
    await page.context().close();
  });

  test("two bidders: the other sees the price within 1 s, gets an outbid toast, retakes the lead", PER_TEST, async (t) => {
    const item = await newItem({ name: unique("Camera") });
    const pa = await pageAs(alice);
    const pb = await pageAs(bob, { timezoneId: "Europe/Paris" });
    await openItem(pa, item.id);
    await openItem(pb, item.id);

    const started = Date.now();
    await bid(pa, "12.00");
    await pb.locator("#current-price").filter({ hasText: "$12.00" }).waitFor({ timeout: 1000 });
    const seenAfter = Date.now() - started;
    assert.ok(seenAfter <= 1000, `bob saw alice's bid after ${seenAfter} ms`);
    t.diagnostic(`bob saw alice's price ${seenAfter} ms after her click`);
    await pa.locator("#bid-message").filter({ hasText: "you lead at $12.00" }).waitFor();
    await pb.locator("#next-minimum").filter({ hasText: "$13.00" }).waitFor();

    // Alice moves on to the list: the outbid toast reaches her on any page.
    await pa.goto(stack.appUrl("#/"));
    await pa.getByRole("heading", { name: "Auctions" }).waitFor();
    await bid(pb, "13.00");
    await pb.locator("#bid-message").filter({ hasText: "you lead at $13.00" }).waitFor();
    await pa.locator(".toast").filter({ hasText: "You were outbid" }).filter({ hasText: "$13.00" }).waitFor({ timeout: 3000 });

    await pa.locator(".toast a").filter({ hasText: "You were outbid" }).click();
    await pa.locator("#current-price").filter({ hasText: "$13.00" }).waitFor();
    await bid(pa, "14.00");
    await pa.locator("#bid-message").filter({ hasText: "you lead at $14.00" }).waitFor();
    await pb.locator("#current-price").filter({ hasText: "$14.00" }).waitFor({ timeout: 1000 });
    await pb.locator(".toast").filter({ hasText: "You were outbid" }).waitFor({ timeout: 3000 });

    const state = await stack.item(item.id);
    assert.equal(state.current_bid_cents, 1400);
    assert.equal(state.highest_bidder_id, alice.user.id);
    assert.equal(state.bid_count, 3);
    // The archived history masks the other bidder and names "You" for one's own rows.
    await waitFor("the archived history", async () => (await pb.locator("#history li").count()) === 3);
    await pb.locator("#history li").filter({ hasText: "You" }).filter({ hasText: "$13.00" }).waitFor();
    await pb.locator("#history li").filter({ hasText: "bidder-" }).filter({ hasText: "$14.00" }).waitFor({ timeout: 5000 });
    await pa.context().close();
    await pb.context().close();
  });

  test("a seller signs up, creates an auction that appears in the list; an admin closes it and both bidders see the result", PER_TEST, async () => {
    const name = unique("Vintage lamp");
    const page = await pageAs(null);
    await page.goto(stack.appUrl("#/signup"));
    const username = `carol-${Date.now().toString(36)}`;
    await page.getByLabel("Email or username").fill(username);
    await page.getByLabel("Display name").fill("Carol");
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Create account" }).click();
    await page.locator("#whoami").filter({ hasText: "Carol" }).waitFor();

    await page.getByRole("link", { name: "Sell" }).click();
    await page.getByLabel("Title").fill(name);
    await page.getByLabel("Description").fill("Brass, 1950s, works.");
    await page.getByLabel("Starting price").fill("20");
    await page.getByLabel("Minimum increment").fill("2.50");
    await page.getByLabel("Reserve price").fill("21");
    await page.getByRole("button", { name: "Create auction" }).click();
    await page.locator("#item-name").filter({ hasText: name }).waitFor();
    const itemId = decodeURIComponent(page.url().split("#/items/")[1]);
    const created = await stack.item(itemId);
    assert.equal(created.starting_price_cents, 2000);
    assert.equal(created.min_increment_cents, 250);
    assert.equal(created.has_reserve, true);

    await page.getByRole("link", { name: "Browse" }).click();
    await page.getByLabel("Search by name").fill(name);
    await page.getByRole("button", { name: "Search" }).click();
    const card = page.locator(".card").filter({ hasText: name });
    await card.waitFor();
    assert.equal(await page.locator(".card").count(), 1);
    await card.filter({ hasText: "Starts at $20.00" }).waitFor();

    const pa = await pageAs(alice);
    const pb = await pageAs(bob);
    await openItem(pa, itemId);
    await openItem(pb, itemId);
    await bid(pa, "20.00");
    await pb.locator("#current-price").filter({ hasText: "$20.00" }).waitFor();
    await bid(pb, "22.50");
    await pb.locator("#bid-message").filter({ hasText: "you lead" }).waitFor();
    // The list's card follows the price live.
    await card.filter({ hasText: "$22.50" }).filter({ hasText: "2 bids" }).waitFor();

    const pAdmin = await pageAs(admin);
    await openItem(pAdmin, itemId);
    await pAdmin.getByRole("button", { name: "Close now" }).click();
    await pb.locator("#result").filter({ hasText: "You won this auction for $22.50." }).waitFor();
    await pa.locator("#result").filter({ hasText: "Sold for $22.50." }).waitFor();
    await pa.locator("#bid-amount").waitFor({ state: "hidden" });
    const closed = await stack.item(itemId);
    assert.equal(closed.status, "closed");
    assert.equal(closed.winner_id, bob.user.id);
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByRole("link", { name: "Log in" }).waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem("auction.session")), null);
    for (const p of [page, pa, pb, pAdmin]) await p.context().close();
  });

  test("a user logs in through the form: a wrong password is refused, the right one leads where they were going", PER_TEST, async () => {
    const erin = await stack.register(`erin-${Date.now().toString(36)}`);
    const page = await pageAs(null);
    // Signed out, Sell sends the user to the login form, and back after it.
    await page.goto(stack.appUrl("#/sell"));
    await page.getByRole("heading", { name: "Log in" }).waitFor();
    await page.getByLabel("Email or username").fill(erin.user.username);
    await page.getByLabel("Password").fill("not the password at all");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.locator("#account-message").filter({ hasText: "Wrong login or password." }).waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem("auction.session")), null);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.locator("#whoami").filter({ hasText: erin.user.display_name }).waitFor();
    await page.getByRole("heading", { name: "Sell an item" }).waitFor();
    // A real session: its access token is accepted by the gateway, and it survives a reload.
    const saved = await page.evaluate(() => JSON.parse(localStorage.getItem("auction.session")));
    assert.equal(saved.user.id, erin.user.id);
    const bids = await stack.api(`/api/v1/users/${erin.user.id}/bids`, { token: saved.access });
    assert.equal(bids.status, 200, JSON.stringify(bids.body));
    await page.reload();
    await page.locator("#whoami").filter({ hasText: erin.user.display_name }).waitFor();
    await page.context().close();
  });

  test("a seller schedules an auction with buy it now and anti-sniping; it is listed as starting later", PER_TEST, async () => {
    const name = unique("Piano stool");
    const page = await pageAs(seller);
    await page.goto(stack.appUrl("#/sell"));
    // Typed in the page's zone to the minute, as the form's datetime-local fields take them.
    const startMs = Math.ceil((Date.now() + 10 * 60_000) / 60_000) * 60_000;
    const endMs = startMs + 3 * 3600_000;
    await page.getByLabel("Title").fill(name);
    await page.getByLabel("Starting price").fill("40");
    await page.getByLabel("Buy it now price").fill("150");
    await page.getByLabel("Starts", { exact: true }).fill(await localInput(page, startMs));
    await page.getByLabel("Ends", { exact: true }).fill(await localInput(page, endMs));
    await page.getByLabel("Extend when a bid comes this many seconds before the end").fill("120");
    await page.getByLabel("Extend by (seconds)").fill("90");
    const sent = page.waitForRequest((r) => r.method() === "POST" && new URL(r.url()).pathname === "/api/v1/items");
    await page.getByRole("button", { name: "Create auction" }).click();
    // The item view carries a buy it now price only while one can buy (not before the start),
    // so the form's request is read instead: the typed digits, as a JSON number.
    assert.match((await sent).postData(), /"buy_now_price":150\.00[,}]/);
    await page.locator("#item-name").filter({ hasText: name }).waitFor();
    await page.locator("#time-left").filter({ hasText: /^starts / }).waitFor();
    const itemId = decodeURIComponent(page.url().split("#/items/")[1]);
    const created = await stack.item(itemId);
    assert.equal(created.status, "scheduled");
    assert.equal(new Date(created.start_time).getTime(), startMs);
    assert.equal(new Date(created.end_time).getTime(), endMs);
    assert.equal(created.starting_price_cents, 4000);
    assert.equal(created.extension_window_secs, 120);
    assert.equal(created.extension_secs, 90);

    // A bidder cannot bid or buy before the start.
    const pb = await pageAs(bob);
    await pb.goto(stack.appUrl(`#/items/${itemId}`));
    await pb.locator("#time-left").filter({ hasText: /^starts / }).waitFor();
    assert.equal(await pb.locator("#bid-amount").isVisible(), false);
    assert.equal(await pb.locator("#buy-now").isVisible(), false);

    // Listed under "Starting later" with its start time, not among the active ones.
    const token = name.split(" ").at(-1);
    await pb.goto(stack.appUrl(`#/?q=${token}&status=scheduled`));
    await pb.locator(".card").filter({ hasText: name }).filter({ hasText: /starts / }).waitFor();
    assert.equal(await pb.getByLabel("Status").locator("option:checked").textContent(), "Starting later");
    await pb.goto(stack.appUrl(`#/?q=${token}&status=active`));
    await pb.locator(".summary").filter({ hasText: `No auctions match “${token}”.` }).waitFor();
    await page.context().close();
    await pb.context().close();
  });

  test("the list's Order puts the soonest ending or the newly listed first", PER_TEST, async () => {
    const token = unique("Lamp").split(" ")[1];
    // Listed A, B, C; B ends first, then C, then A.
    for (const [label, minutes] of [["A", 90], ["B", 30], ["C", 60]]) await newItem({ name: `Lamp ${token} ${label}`, minutes });
    const names = (labels) => labels.map((label) => `Lamp ${token} ${label}`);
    const page = await pageAs(null);
    await page.goto(stack.appUrl(`#/?q=${token}`));
    const shown = () => page.locator(".card h2").allTextContents();
    await waitFor("three cards", async () => (await shown()).length === 3);
    assert.equal(await page.getByLabel("Order").locator("option:checked").textContent(), "Ending soon");
    assert.deepEqual(await shown(), names(["B", "C", "A"]));
    await page.getByLabel("Order").selectOption({ label: "Newly listed" });
    await waitFor("the newest first", async () => JSON.stringify(await shown()) === JSON.stringify(names(["C", "B", "A"])));
    assert.match(page.url(), /sort=newest/);
    await page.context().close();
  });

  test("the countdown follows an anti-sniping extension", PER_TEST, async () => {
    // Ends in 40 s; a bid in its last 60 s moves the end to 120 s after the bid.
    const item = await newItem({ name: unique("Watch"), minutes: 40 / 60, extension_window_secs: 60, extension_secs: 120 });
    const page = await pageAs(alice);
    await openItem(page, item.id);
    await page.locator("#time-left").filter({ hasText: /^[1-4]?\ds$/ }).waitFor();
    const endsBefore = await page.locator("#ends-at").textContent();
    await bid(page, "10.00");
    await page.locator("#extended").filter({ hasText: "Extended by a late bid" }).waitFor();
    await page.locator("#time-left").filter({ hasText: /^1m \d\ds$/ }).waitFor();
    assert.notEqual(await page.locator("#ends-at").textContent(), endsBefore);
    const state = await stack.item(item.id);
    assert.ok(new Date(state.end_time) - new Date(item.end_time) > 60_000, "the end moved");
    await page.context().close();
  });

  test("an admin extends, closes and relists from the item page, and a viewer follows each", PER_TEST, async () => {
    const item = await newItem({ name: unique("Telescope"), minutes: 30 });
    const viewer = await pageAs(null);
    await openItem(viewer, item.id);
    await viewer.locator("#sign-in-hint").waitFor();
    const pAdmin = await pageAs(admin);
    await openItem(pAdmin, item.id);
    const endsBefore = await viewer.locator("#ends-at").textContent();
    await pAdmin.getByRole("button", { name: "Extend" }).click();
    await pAdmin.locator("#manage-message").filter({ hasText: "Extending: done." }).waitFor();
    await viewer.locator("#extended").filter({ hasText: "End time extended." }).waitFor();
    assert.notEqual(await viewer.locator("#ends-at").textContent(), endsBefore);

    await pAdmin.getByRole("button", { name: "Close now" }).click();
    await viewer.locator("#result").filter({ hasText: "Ended with no bids." }).waitFor();
    await pAdmin.locator("#relist-price").fill("5");
    await pAdmin.getByRole("button", { name: "Relist" }).click();
    await viewer.locator("#current-price").filter({ hasText: "$5.00" }).waitFor();
    await viewer.locator("#result").waitFor({ state: "hidden" });
    assert.equal((await stack.item(item.id)).round, 2);
    await viewer.context().close();
    await pAdmin.context().close();
  });

  test("an admin cancels a bid-on auction from the item page, with a reason the bidder sees", PER_TEST, async () => {
    const { item, page: pa } = await aliceLeading("Mirror");
    const pAdmin = await pageAs(admin);
    await openItem(pAdmin, item.id);
    await pAdmin.getByLabel("Reason for cancelling").fill("Listed by mistake");
    await pAdmin.getByRole("button", { name: "Cancel auction" }).click();
    await pa.locator("#result").filter({ hasText: "Cancelled: Listed by mistake" }).waitFor();
    await pa.locator("#bid-amount").waitFor({ state: "hidden" });
    await pAdmin.locator("#result").filter({ hasText: "Cancelled: Listed by mistake" }).waitFor();
    const state = await stack.item(item.id);
    assert.equal(state.status, "cancelled");
    assert.equal(state.cancel_reason, "Listed by mistake");
    assert.equal(state.winner_id, null);
    await pa.context().close();
    await pAdmin.context().close();
  });

  test("an expired access token is renewed in the background and the user stays signed in", PER_TEST, async () => {
    // A sign-in of its own, so rotating its refresh token leaves the suite's tokens alone.
    const session = await stack.login(alice.user.username);
    const item = await newItem({ name: unique("Lens") });
    const page = await pageAs(session, { accessExpired: true });
    await openItem(page, item.id);
    const stored = () => page.evaluate(() => JSON.parse(localStorage.getItem("auction.session") ?? "null"));
    await waitFor("a refreshed session", async () => (await stored())?.refresh !== session.refresh_token);
    const renewed = await stored();
    assert.ok(renewed.accessExpiresAt > Date.now() + 60_000, "a fresh access token");
    await bid(page, "10.00");
    await page.locator("#bid-message").filter({ hasText: "you lead at $10.00" }).waitFor();
    // The used refresh token is spent: presenting it again is refused (and revokes the family).
    const reuse = await stack.api("/api/v1/auth/refresh", { method: "POST", json: { refresh_token: session.refresh_token } });
    assert.equal(reuse.status, 401);
    assert.equal(reuse.body.error, "refresh_token_reused");
    await page.context().close();
  });

  test("a socket dropped by restarting the broadcast instance reconnects and shows the right price", PER_TEST, async () => {
    const item = await newItem({ name: unique("Clock") });
    const page = await pageAs(alice);
    await openItem(page, item.id);
    await stack.restartBroadcast(async () => {
      await page.locator("#live-status[data-state='reconnecting']").waitFor();
      // Bids go on while no socket is up; the page learns of them from the next snapshot.
      for (const amount of [10, 11, 15]) {
        const reply = await stack.api(`/api/v1/items/${item.id}/bid`, { method: "POST", token: bob.access_token, json: { amount } });
        assert.equal(reply.body.code, "accepted");
      }
    });
    await page.locator("#live-status[data-state='live']").waitFor({ timeout: 10_000 });
    await page.locator("#current-price").filter({ hasText: "$15.00" }).waitFor();
    await page.locator("#bid-count").filter({ hasText: "3" }).waitFor();
    // And it is live again.
    await stack.api(`/api/v1/items/${item.id}/bid`, { method: "POST", token: bob.access_token, json: { amount: 17 } });
    await page.locator("#current-price").filter({ hasText: "$17.00" }).waitFor({ timeout: 2000 });
    await page.context().close();
  });

  test("a bid whose answer is lost is retried with the same Idempotency-Key and placed once", PER_TEST, async () => {
    const item = await newItem({ name: unique("Radio") });
    const page = await pageAs(alice);
    await openItem(page, item.id);
    const keys = [];
    let dropped = false;
    await page.route("**/bid", async (route) => {
      keys.push(route.request().headers()["idempotency-key"]);
      if (!dropped) {
        dropped = true;
        // The bid reaches the real gateway; only its answer is lost on the way back.
        await route.fetch();
        await route.abort("connectionreset");
      } else {
        await route.continue();
      }
    });
    await bid(page, "10.00");
    await page.locator("#bid-message").filter({ hasText: "cannot be reached" }).waitFor();
    await page.getByRole("button", { name: "Retry the same bid" }).click();
    await page.locator("#bid-message").filter({ hasText: "you lead at $10.00" }).waitFor();
    assert.equal(keys.length, 2);
    assert.ok(keys[0], "the bid carries an Idempotency-Key");
    assert.equal(keys[0], keys[1], "the retry reuses the attempt's key");
    const state = await stack.item(item.id);
    assert.equal(state.bid_count, 1, "one bid, not two");
    assert.equal(state.seq, 1);

    // A new attempt (another amount) gets a new key.
    await bid(page, "11.00");
    await page.locator("#bid-message").filter({ hasText: "you lead at $11.00" }).waitFor();
    assert.equal(keys.length, 3);
    assert.notEqual(keys[2], keys[0]);
    await page.context().close();
  });

  test("a 429 shows a clear message and a retry of the same attempt places one bid", PER_TEST, async () => {
    const item = await newItem({ name: unique("Kettle") });
    // A bidder of its own: the test spends its whole burst.
    const dave = await stack.register(`dave-${Date.now().toString(36)}`);
    const page = await pageAs(dave);
    await openItem(page, item.id);
    // Just before the page's bid reaches the gateway, Dave's burst is spent by real requests
    // (each a bid too low, which still counts), so the gateway answers it 429.
    let flood = null;
    await page.route("**/bid", async (route) => {
      if (!flood) {
        flood = await Promise.all(Array.from({ length: 30 }, () =>
          stack.api(`/api/v1/items/${item.id}/bid`, { method: "POST", token: dave.access_token, json: { amount: 1 } })));
      }
      await route.continue();
    });
    await bid(page, "10.00");
    await page.locator("#bid-message").filter({ hasText: "Too many requests: please wait" }).waitFor();
    assert.ok(flood.some((r) => r.status === 429), "the per-user bid limit answered 429");
    const retry = page.getByRole("button", { name: "Retry the same bid" });
    await retry.waitFor();
    await waitFor("the retry to be allowed", () => retry.isEnabled(), 10_000);
    await retry.click();
    await page.locator("#bid-message").filter({ hasText: "you lead at $10.00" }).waitFor();
    assert.equal((await stack.item(item.id)).bid_count, 1);
    await page.context().close();
  });

  test("a 503 while Redis is paused shows a clear message, and a retry of the same attempt places one bid", PER_TEST, async () => {
    // A stack of its own on a throwaway redis-server, frozen with SIGSTOP: the gateway's Redis
    // deadline then answers the bid 503. The machine's shared Redis is never paused.
    const own = await Stack.start({ ownRedis: true });
    try {
      const suffix = Date.now().toString(36);
      const owner = await own.register(`sam-${suffix}`);
      const bidder = await own.register(`sue-${suffix}`);
      const created = await own.createItem(owner, { name: unique("Piano") });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const item = created.body;
      const page = await pageAs(bidder, {}, own);
      await openItem(page, item.id, own);
      own.redis.pause();
      try {
        await bid(page, "10.00");
        // The gateway cannot tell whether the script ran before the deadline: 503 outcome_unknown.
        await page.locator("#bid-message")
          .filter({ hasText: "The service answered too late: your bid may or may not have been placed. Retry: it is safe" })
          .waitFor();
      } finally {
        own.redis.resume();
      }
      const retry = page.getByRole("button", { name: "Retry the same bid" });
      await waitFor("the retry to be allowed", () => retry.isEnabled(), 10_000);
      await retry.click();
      await page.locator("#bid-message").filter({ hasText: "you lead at $10.00" }).waitFor();
      const state = await own.item(item.id);
      assert.equal(state.bid_count, 1, "one bid, not two");
      assert.equal(state.seq, 1);
      assert.equal(state.highest_bidder_id, bidder.user.id);
      await page.context().close();
    } finally {
      await own.stop();
    }
  });

  test("search and paging find every matching auction", PER_TEST, async () => {
    const token = unique("Teapot").split(" ")[1];
    for (let i = 0; i < 23; i += 1) await newItem({ name: `Teapot ${token} no ${i}`, minutes: 60 + i });
    const page = await pageAs(null);
    await page.goto(stack.appUrl(`#/?q=${token}`));
    await page.locator(".summary").filter({ hasText: "Page 1: 20 auctions" }).waitFor();
    await page.getByRole("button", { name: "Next page" }).click();
    await page.locator(".summary").filter({ hasText: "Page 2: 3 auctions" }).waitFor();
    assert.equal(await page.getByRole("button", { name: "Next page" }).isDisabled(), true);
    // Soonest ending first: the page 2 items are the three ending last.
    const names = await page.locator(".card h2").allTextContents();
    assert.deepEqual(names, [20, 21, 22].map((i) => `Teapot ${token} no ${i}`));
    await page.context().close();
  });

  test("proxy bidding: a maximum keeps the lead and the rival sees it", PER_TEST, async () => {
    const item = await newItem({ name: unique("Bike") });
    const pa = await pageAs(alice);
    const pb = await pageAs(bob);
    await openItem(pa, item.id);
    await openItem(pb, item.id);
    await bid(pa, "10.00", "30.00");
    await pa.locator("#bid-message").filter({ hasText: "Your maximum: $30.00" }).waitFor();
    await bid(pb, "15.00");
    await pb.locator("#bid-message").filter({ hasText: "another bidder's maximum is higher" }).waitFor();
    // Bob, beaten by the maximum at once, is told he was outbid; Alice, whose maximum answered
    // his bid, is never told so (his bid led only inside the same script call).
    await pb.locator(".toast").filter({ hasText: "You were outbid" }).waitFor({ timeout: 3000 });
    await pa.waitForTimeout(1500);
    assert.equal(await pa.locator(".toast").filter({ hasText: "You were outbid" }).count(), 0, "no outbid toast for the maximum's owner");
    const state = await stack.item(item.id);
    assert.equal(state.highest_bidder_id, alice.user.id);
    const fields = Object.entries(state);
    assert.ok(!fields.some(([k, v]) => /max/.test(k) || v === 30 || v === 3000), "no maximum in the item view");
    await pa.context().close();
    await pb.context().close();
  });

  test("buy it now ends the auction at its price", PER_TEST, async () => {
    const item = await newItem({ name: unique("Guitar"), buy_now_price: 99 });
    const page = await pageAs(bob);
    await openItem(page, item.id);
    page.once("dialog", (dialog) => dialog.accept());
    await page.getByRole("button", { name: "Buy it now for $99.00" }).click();
    await page.locator("#result").filter({ hasText: "You won this auction for $99.00." }).waitFor();
    const bought = await stack.item(item.id);
    assert.equal(bought.status, "closed");
    assert.equal(bought.winner_id, bob.user.id);
    assert.equal(bought.current_bid_cents, 9900, "sold at the buy it now price");
    await page.context().close();
  });

  test("the watchlist keeps an auction", PER_TEST, async () => {
    const item = await newItem({ name: unique("Chair") });
    const page = await pageAs(alice);
    await openItem(page, item.id);
    await page.getByRole("button", { name: "Watch" }).click();
    await page.getByRole("button", { name: "Stop watching" }).waitFor();
    await page.goto(stack.appUrl("#/me/watchlist"));
    await page.locator(".card").filter({ hasText: item.name }).waitFor();
    const watched = await stack.api("/api/v1/me/watchlist", { token: alice.access_token });
    assert.equal(watched.status, 200, JSON.stringify(watched.body));
    assert.ok(watched.body.items.some((i) => i.id === item.id), "the gateway keeps the watched item");
    await page.context().close();
  });

  test("notifications list the outbid by the item's name and the badge counts it", PER_TEST, async () => {
    const { item, page } = await aliceLeading("Desk");
    await stack.api(`/api/v1/items/${item.id}/bid`, { method: "POST", token: bob.access_token, json: { amount: 12 } });
    await page.locator(".toast").filter({ hasText: "You were outbid" }).waitFor();
    await page.locator("#unread-count").filter({ hasText: /[1-9]/ }).waitFor();
    await page.goto(stack.appUrl("#/me/notifications"));
    // Named by the item's name, not its id.
    await page.locator("#notifications li").filter({ hasText: `Outbid on ${item.name}: now $12.00` }).waitFor();
    const listed = await stack.api("/api/v1/me/notifications", { token: alice.access_token });
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.ok(listed.body.notifications.some((n) => n.type === "outbid" && n.item_id === item.id), "the gateway stored the outbid");
    await page.context().close();
  });

  test("my bids and won list where the user stands", PER_TEST, async () => {
    const item = await newItem({ name: unique("Vase") });
    const reply = await stack.api(`/api/v1/items/${item.id}/bid`, { method: "POST", token: bob.access_token, json: { amount: 10 } });
    assert.equal(reply.body.code, "accepted");
    await stack.api(`/api/v1/items/${item.id}/close`, { method: "POST", token: admin.access_token });
    const page = await pageAs(bob);
    // "Won" is read from the archive (the bid history), which the worker fills a moment later:
    // the page is reloaded until it shows (a goto to the same URL would not render it again).
    await page.goto(stack.appUrl("#/me/won"));
    const won = page.locator(".card").filter({ hasText: item.name }).filter({ hasText: "won" });
    await waitFor("the archived bid", () => won.waitFor({ timeout: 1000 }).then(() => true, async () => {
      await page.reload();
      return false;
    }), 30_000);
    await page.getByRole("link", { name: "My bids" }).click();
    await page.locator(".card").filter({ hasText: item.name }).waitFor();
    await page.context().close();
  });

});
