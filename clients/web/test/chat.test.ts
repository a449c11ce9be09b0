// The web app as two people use it, in Debian's Chromium driven by playwright-core,
// against a real `gim serve` that serves the app itself: both sign up, become friends,
// chat, one reloads and still sees its history, one goes offline and catches up, they
// talk in a group and like each other's moments. On failure, screenshots of both
// browsers are saved in test-results/.

import { mkdirSync } from "node:fs";
import { afterAll, beforeAll, expect, onTestFailed, test } from "vitest";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

import { startGim, type GimServer } from "../../ts/test/gim-server.js";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
// Chromium as root, headless, and quiet on a machine with no network beyond loopback.
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const WAIT = 15_000;

let gim: GimServer;
let browser: Browser;
let base: string;

beforeAll(async () => {
  gim = await startGim();
  base = gim.wsUrl.replace(/^ws:/, "http:").replace(/\/ws$/, "/");
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
});

afterAll(async () => {
  await browser?.close();
  await gim?.stop();
});

/** What the pages said on their consoles, printed when the test fails. */
const consoles: string[] = [];
/** The URL of every WebSocket the pages opened. */
const socketUrls: string[] = [];

async function person(context: BrowserContext): Promise<Page> {
  const page = await context.newPage();
  const who = consoles.length;
  page.on("console", (message) => consoles.push(`[page ${who}] ${message.type()}: ${message.text()}`));
  page.on("websocket", (socket) => socketUrls.push(socket.url()));
  page.on("pageerror", (error) => consoles.push(`[page ${who}] error: ${error.message}`));
  page.setDefaultTimeout(WAIT);
  await page.goto(base);
  return page;
}

async function signUp(page: Page, username: string, nickname: string): Promise<void> {
  await page.getByRole("button", { name: "Create an account" }).click();
  await page.locator("input[name=username]").fill(username);
  await page.locator("input[name=nickname]").fill(nickname);
  await page.locator("input[name=password]").fill("correct horse battery");
  await page.getByRole("button", { name: "Create account" }).click();
  await expect.poll(() => page.locator("header .me").textContent(), { timeout: WAIT }).toContain(nickname);
  await page.locator('.status[data-state="online"]').waitFor();
}

async function tab(page: Page, name: string): Promise<void> {
  await page.getByRole("button", { name, exact: true }).click();
}

async function say(page: Page, text: string): Promise<void> {
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.getByRole("button", { name: "Send" }).click();
  await page.locator(".messages li.mine", { hasText: text }).waitFor();
}

/** The texts of the open conversation, in order. */
async function lines(page: Page): Promise<string[]> {
  return page.locator(".messages li:not(.system) .text").allTextContents();
}

async function screenshots(pages: Record<string, Page>): Promise<void> {
  if (consoles.length) console.log(consoles.join("\n"));
  mkdirSync("test-results", { recursive: true });
  for (const [name, page] of Object.entries(pages)) {
    if (!page.isClosed()) await page.screenshot({ path: `test-results/${name}.png`, fullPage: true });
  }
}

test("two people sign up, befriend each other, chat, reload, catch up, meet in a group a third joins, and in moments", async () => {
  const [aliceContext, bobContext] = [await browser.newContext(), await browser.newContext()];
  let alice = await person(aliceContext);
  let bob = await person(bobContext);
  onTestFailed(() => screenshots({ alice, bob }));

  await signUp(alice, "alice", "Alice");
  await signUp(bob, "bob", "Bob");

  // Bob asks by username; Alice accepts from the request that reaches her live.
  await tab(bob, "Friends");
  await bob.getByLabel("Username").fill("ALICE");
  await bob.getByRole("button", { name: "Add friend" }).click();
  await bob.getByText("Request sent to Alice.").waitFor();
  await tab(alice, "Friends");
  await alice.locator("[data-request]", { hasText: "Bob" }).getByRole("button", { name: "Accept" }).click();
  const bobForAlice = alice.locator("[data-friend]", { hasText: "Bob" });
  await bobForAlice.waitFor();
  await bobForAlice.locator(".dot.on").waitFor(); // Bob is online

  // 1:1 both ways; Bob's unread badge shows before he opens the chat.
  await bobForAlice.click();
  await say(alice, "hi bob");
  await tab(bob, "Chats");
  const aliceForBob = bob.locator("[data-conversation^='d:']", { hasText: "Alice" });
  await aliceForBob.locator(".badge", { hasText: "1" }).waitFor();
  await aliceForBob.click();
  await bob.locator(".messages li.theirs", { hasText: "hi bob" }).waitFor();
  await say(bob, "hello alice");
  await alice.locator(".messages li.theirs", { hasText: "hello alice" }).waitFor();

  // A reload keeps Alice signed in, with her history.
  await alice.reload();
  await alice.locator('.status[data-state="online"]').waitFor();
  await alice.locator("[data-conversation^='d:']", { hasText: "Bob" }).click();
  expect(await lines(alice)).toEqual(["hi bob", "hello alice"]);

  // Bob goes offline; what Alice sends meanwhile reaches him once when he is back.
  await bob.close();
  await say(alice, "are you there?");
  await say(alice, "call me");
  bob = await person(bobContext);
  await bob.locator('.status[data-state="online"]').waitFor();
  // The badge is the server's count: the two messages that came while he was away.
  const aliceAgain = bob.locator("[data-conversation^='d:']", { hasText: "Alice" });
  await aliceAgain.locator(".badge", { hasText: /^2$/ }).waitFor();
  await aliceAgain.click();
  await bob.locator(".messages li", { hasText: "call me" }).waitFor();
  expect(await lines(bob)).toEqual(["hi bob", "hello alice", "are you there?", "call me"]);

  // A group with both in it.
  await tab(alice, "Groups");
  await alice.getByLabel("Group name").fill("Team");
  await alice.locator("label.check", { hasText: "Bob" }).locator("input").check();
  await alice.getByRole("button", { name: "Create group" }).click();
  await alice.locator(".pane-head h2", { hasText: "Team" }).waitFor(); // not Bob's chat, still open meanwhile
  await say(alice, "hello team");
  await bob.locator("[data-conversation^='g:']", { hasText: "Team" }).click();
  await bob.locator(".messages li.theirs", { hasText: "hello team" }).waitFor();
  await say(bob, "hi all");
  await alice.locator(".messages li.theirs", { hasText: "hi all" }).waitFor();

  // What arrives while Alice types re-renders her page, and takes neither her text nor
  // her cursor: she types on where she was.
  const draft = alice.getByLabel("Message", { exact: true });
  await draft.fill("typing while");
  await say(bob, "interrupting");
  await alice.locator(".messages li.theirs", { hasText: "interrupting" }).waitFor();
  await alice.keyboard.type(" bob talks");
  expect(await draft.inputValue()).toBe("typing while bob talks");
  await alice.keyboard.press("Enter");
  await bob.locator(".messages li.theirs", { hasText: "typing while bob talks" }).waitFor();

  // Carol joins the group by its id, which Alice's pane shows.
  const groupId = (await alice.locator(".pane-head .muted").textContent())!.replace(/^id /, "");
  const carolContext = await browser.newContext();
  const carol = await person(carolContext);
  onTestFailed(() => screenshots({ carol }));
  await signUp(carol, "carol", "Carol");
  await tab(carol, "Groups");
  await carol.getByLabel("Group id").fill(groupId);
  await carol.getByRole("button", { name: "Join group" }).click();
  await carol.locator(".pane-head h2", { hasText: "Team" }).waitFor();
  await alice.locator(".messages li.system", { hasText: "joined" }).waitFor();
  await say(alice, "welcome carol");
  await carol.locator(".messages li.theirs", { hasText: "welcome carol" }).waitFor();
  await carolContext.close();

  // Moments: Alice posts, Bob likes and comments.
  await tab(alice, "Moments");
  await alice.getByLabel("Post", { exact: true }).fill("first post");
  await alice.getByRole("button", { name: "Post to friends" }).click();
  await alice.locator(".post", { hasText: "first post" }).waitFor();
  await tab(bob, "Moments");
  const post = bob.locator(".post", { hasText: "first post" });
  await post.getByRole("button", { name: "Like" }).click();
  await post.locator(".likes", { hasText: "1 like" }).waitFor();
  await post.getByLabel("Comment").fill("nice");
  await post.getByRole("button", { name: "Reply" }).click();
  await bob.locator(".post .comments", { hasText: "nice" }).waitFor();

  // Bob's comment re-renders Alice's feed while she writes her next post and a reply.
  const postDraft = alice.getByLabel("Post", { exact: true });
  await postDraft.fill("second");
  await post.getByLabel("Comment").fill("more");
  await post.getByRole("button", { name: "Reply" }).click();
  await alice.locator(".post .comments", { hasText: "more" }).waitFor();
  await alice.keyboard.type(" post");
  expect(await postDraft.inputValue()).toBe("second post");
  await alice.getByRole("button", { name: "Post to friends" }).click();
  await bob.locator(".post", { hasText: "second post" }).waitFor();

  // The sessions authenticated with their first frame: no URL a browser prints or a
  // proxy logs carried a token.
  expect(socketUrls.length).toBeGreaterThan(0);
  expect(socketUrls.filter((url) => url.includes("token="))).toEqual([]);

  await aliceContext.close();
  await bobContext.close();
});
