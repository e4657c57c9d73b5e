// The dashboard runs a project end to end against a token-protected
// service: the token entered in its prompt, the project opened from the
// list, "Run all", the bar at 100% at `done`, every tile's image loaded,
// the stream closed for good after `done`.  Then: the token is asked for
// once per session (a reload does not ask again), a wrong one is asked for
// again, and the page's CSP refuses an inline script.
import {
	csp, enterToken, openDashboard, openProject, panel, problems, shot, tiles, waitImages,
	waitState,
} from './dash.mjs';

export default async function (context, a) {
	const out = {};
	const page = await openDashboard(context, a);
	out.tokenStored = await page.evaluate(() => sessionStorage.getItem('t2istage.token'));
	await page.waitForSelector(`a[href="#/projects/${a.project}"]`);
	out.listed = await page.$$eval('table.projects tbody tr', (rs) => rs.map((r) => r.dataset.id));
	await openProject(page, a.project);
	out.before = await tiles(page);
	await page.getByRole('button', { name: 'Run all' }).click();
	await waitState(page, ['completed', 'partial', 'failed', 'cancelled']);
	out.panel = await panel(page);
	await waitImages(page);
	out.tiles = await tiles(page);
	// Each tile's link is the image's file_url: it loads with no header.
	out.files = await page.evaluate(async (hrefs) => Promise.all(hrefs.map(async (h) => {
		const r = await fetch(h);
		return { status: r.status, type: r.headers.get('content-type'), size: (await r.blob()).size };
	})), out.tiles.map((t) => t.href));
	out.history = await page.$$eval('.history tbody tr', (rs) => rs.length);
	// Longer than the stream's retry: 3000: a reconnect would have come.
	await page.waitForTimeout(a.watch_ms || 4000);
	out.requests = page.seen.requests.slice();
	out.screenshot = await shot(page, a.artifacts, 'dashboard-done-1280.png');
	out.problems = problems(page);
	out.csp = await csp(page);

	// The token is kept for the session: a reload asks nothing.
	await page.reload({ waitUntil: 'load' });
	await page.waitForSelector('.tile');
	out.reloadAsked = await page.$eval('#token-dialog', (d) => d.open);
	out.reloadPanel = await panel(page);

	// A token that no longer works is asked for again.
	await page.evaluate(() => sessionStorage.setItem('t2istage.token', 'not-the-token'));
	const before = page.seen.console.length;
	await page.reload({ waitUntil: 'load' });
	await page.waitForSelector('#token-dialog[open]');
	out.refusedWhy = await page.$eval('#token-why', (e) => e.textContent);
	await enterToken(page, a.token);
	await page.waitForSelector('.tile');
	out.afterRefusal = page.seen.console.slice(before).filter((m) => m.type === 'error')
		.map((m) => m.text);

	// The policy is in force: an inline script is refused, and reported.
	out.inline = await page.evaluate(() => {
		const s = document.createElement('script');
		s.textContent = 'window.__inline = 1';
		document.body.append(s);
		return window.__inline === undefined ? 'blocked' : 'ran';
	});
	out.cspAfter = await csp(page);
	return out;
}
