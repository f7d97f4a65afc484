// A real browser through an SSO login: Debian's Chromium, driven by playwright-core, opens
// Praxis's start URL, fills the identity provider's login form (and its consent page, if any),
// and follows the provider back to Praxis until the page is on `return_to`.
// Usage: node sso_browser.mjs START_URL RETURN_PREFIX LOGIN
// Prints one JSON line: {"url": "<final URL>"} or {"error": "...", "url": "...", "page": "..."}.
import { chromium } from 'playwright-core';

const [startUrl, returnPrefix, login] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.PRAXIS_TEST_CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await (await browser.newContext()).newPage();
page.setDefaultTimeout(15000);
try {
  await page.goto(startUrl);
  for (let step = 0; step < 10 && !page.url().startsWith(returnPrefix); step++) {
    const before = page.url();
    if (await page.locator('input[name=login]').count()) {
      await page.fill('input[name=login]', login);
      await page.fill('input[name=password]', 'any password: the provider checks none');
      await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    } else if (await page.locator('form button[type=submit], form input[type=submit]').count()) {
      // A consent page, or a form a provider did not submit by itself.
      await Promise.all([page.waitForNavigation(),
        page.locator('form button[type=submit], form input[type=submit]').first().click()]);
    } else if (page.url() === before) {
      // An auto-submitting form is on its way (SAML POST binding), or a page that ends here.
      await page.waitForURL((url) => url.toString() !== before, { timeout: 5000 }).catch(() => {});
      if (page.url() === before) break;
    }
  }
  if (page.url().startsWith(returnPrefix)) {
    console.log(JSON.stringify({ url: page.url() }));
  } else {
    const text = (await page.textContent('body').catch(() => '')) || '';
    console.log(JSON.stringify({ error: 'did not return', url: page.url(), page: text.slice(0, 500) }));
  }
} catch (error) {
  console.log(JSON.stringify({ error: String(error), url: page.url() }));
} finally {
  await browser.close();
}
