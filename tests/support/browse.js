// Walks reprod's pages in headless Chromium (Debian's, driven by playwright-core) as a reader would: from
// the dashboard, following every link to a page (/images..., /jobs/...), at each width given.
//
// Usage: node browse.js BASE_URL OUTDIR WIDTH...
// For every page and width: whether the document is wider than the window (horizontal overflow), and a
// full-page screenshot OUTDIR/<width>/<n>-<slug>.png. Prints one JSON object: {pages: [{path, width,
// scrollWidth, clientWidth, status, shot}], dialogs: [...], pwned: [...], errors: [...]}. `dialogs` lists
// any alert/confirm/prompt a page opened, `pwned` any page whose body a script marked: both must stay
// empty, as the pages run no script.
const path = require("path");
const fs = require("fs");
const { chromium } = require(process.env.PLAYWRIGHT_CORE || "playwright-core");

const [base, outdir, ...widths] = process.argv.slice(2);
const MAX_PAGES = 60;

function isPage(href) {
  const u = new URL(href, base);
  if (u.origin !== new URL(base).origin) return null;
  const p = u.pathname;
  if (p === "/" || p === "/images" || p.startsWith("/images/") || /^\/jobs\/[^/]+$/.test(p)) {
    return p + u.search;
  }
  return null;
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu"],
  });
  const result = { pages: [], dialogs: [], pwned: [], errors: [] };
  for (const width of widths.map(Number)) {
    const page = await browser.newPage({ viewport: { width, height: 900 } });
    page.on("dialog", async (d) => {
      result.dialogs.push(d.message());
      await d.dismiss();
    });
    const seen = new Set(["/"]);
    const queue = ["/"];
    fs.mkdirSync(path.join(outdir, String(width)), { recursive: true });
    let n = 0;
    while (queue.length && n < MAX_PAGES) {
      const p = queue.shift();
      let response;
      try {
        response = await page.goto(base + p, { waitUntil: "load" });
      } catch (e) {
        result.errors.push(`${p}: ${e.message}`);
        continue;
      }
      const m = await page.evaluate(() => ({
        scrollWidth: document.documentElement.scrollWidth,
        clientWidth: document.documentElement.clientWidth,
        pwned: document.body.getAttribute("data-pwned"),
        links: Array.from(document.querySelectorAll("a[href]")).map((a) => a.href),
      }));
      const slug = (p === "/" ? "dashboard" : p.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "")).slice(0, 60);
      const shot = path.join(outdir, String(width), `${String(n).padStart(2, "0")}-${slug}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      result.pages.push({ path: p, width, scrollWidth: m.scrollWidth, clientWidth: m.clientWidth, status: response.status(), shot });
      if (m.pwned) result.pwned.push(p);
      for (const href of m.links) {
        const next = isPage(href);
        if (next && !seen.has(next)) {
          seen.add(next);
          queue.push(next);
        }
      }
      n++;
    }
    await page.close();
  }
  await browser.close();
  console.log(JSON.stringify(result));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
